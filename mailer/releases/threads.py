"""Corrections, withdrawals and follow-ups: new releases linked to one that went out,
sent to exactly who it reached and threaded under what each of them got (the rules are
:mod:`mailer.domain.conversations`).

Each verb creates a **draft** that goes through the same submit and approval as any
release; the delivery engine plans it from the parent's ledger
(:func:`mailer.store.deliveries.plan_thread`) instead of from segments. A correction or
withdrawal also cancels the parent's still-pending rows at once (recorded in the
parent's history): nobody should get the version being corrected from now on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.conversations import FollowUpFilter, ReleaseKind, can_answer, prefixed
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.message import Renderer
from mailer.releases import linked, workflow
from mailer.releases.authoring import create_parsed
from mailer.releases.source import ReleaseFile, VariantOverride, parse_release
from mailer.store import deliveries as delivery_store
from mailer.store import releases as release_store
from mailer.store.tables import Release

__all__ = ["correct", "follow_up", "prefix_of", "withdraw"]

_WORDS = {
    ReleaseKind.CORRECTION: "correction",
    ReleaseKind.WITHDRAWAL: "withdrawal",
    ReleaseKind.FOLLOW_UP: "follow-up",
}


def prefix_of(kind: ReleaseKind, settings: Settings) -> str:
    """The configured subject prefix of ``kind`` (``[conversations]``)."""
    conv = settings.conversations
    return {
        ReleaseKind.CORRECTION: conv.correction_prefix,
        ReleaseKind.WITHDRAWAL: conv.withdrawal_prefix,
        ReleaseKind.FOLLOW_UP: conv.follow_up_prefix,
    }[kind]


def _answerable(session: Session, parent_id: int, kind: ReleaseKind) -> Release:
    """The parent, locked; WorkflowError unless it has started sending."""
    parent = release_store.get_release(session, parent_id, for_update=True)
    status = ReleaseStatus(parent.status)
    if not can_answer(status):
        raise WorkflowError(
            f"release {parent_id} is {status.value}: only a release that has started sending can get a "
            f"{_WORDS[kind]} (edit or cancel it instead)"
        )
    return parent


def _link(
    parent: Release, kind: ReleaseKind, prefix: str, only: FollowUpFilter | None = None
) -> Callable[[Release], str]:
    def fill(release: Release) -> str:
        release.parent_id = parent.id
        release.kind = kind.value
        release.follow_up_filter = only.value if only is not None else None
        linked.keep_prefix(release, prefix)
        return f"created: {_WORDS[kind]} of release {parent.id}" + (f" (only {only.value})" if only else "")

    return fill


def _cancel_parent_pending(session: Session, parent: Release, kind: ReleaseKind, *, actor: str, now: datetime) -> int:
    """Writes: the parent's queued and deferred rows become ``cancelled`` (recorded in the
    parent's history when there were some)."""
    count = delivery_store.cancel_pending(session, parent.id, now)
    if count:
        status = ReleaseStatus(parent.status)
        note = f"{count} pending deliveries cancelled: a {_WORDS[kind]} was created"
        workflow.move(session, parent.id, status, actor=actor, now=now, note=note, src=status)
    return count


def _create(
    session: Session,
    parent: Release,
    parsed: ReleaseFile,
    kind: ReleaseKind,
    *,
    author: str,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
    only: FollowUpFilter | None = None,
) -> Release:
    prefix = prefix_of(kind, settings)
    parsed = linked.with_prefix(parsed, prefix)
    fill = _link(parent, kind, prefix, only)
    release = create_parsed(session, parsed, author=author, renderer=renderer, now=now, link=fill)
    if kind in (ReleaseKind.CORRECTION, ReleaseKind.WITHDRAWAL):
        _cancel_parent_pending(session, parent, kind, actor=author, now=now)
    return release


def correct(
    session: Session, parent_id: int, text: str, *, author: str, renderer: Renderer, settings: Settings, now: datetime
) -> Release:
    """Writes: a draft correction of release ``parent_id`` from a release file whose front
    matter may leave out title, client, template and segments (the parent's), and cancels
    the parent's pending rows. Raises NotFoundError, WorkflowError (the parent has not
    started), InputError (the file)."""
    author = workflow.check_actor(author)
    parent = _answerable(session, parent_id, ReleaseKind.CORRECTION)
    prefix = prefix_of(ReleaseKind.CORRECTION, settings)
    parsed = parse_release(text, defaults=linked.defaults_from(session, parent, prefix))
    return _create(
        session, parent, parsed, ReleaseKind.CORRECTION, author=author, renderer=renderer, settings=settings, now=now
    )


def withdraw(
    session: Session, parent_id: int, note: str, *, author: str, renderer: Renderer, settings: Settings, now: datetime
) -> Release:
    """Writes: a draft withdrawal of release ``parent_id``: the parent's title, subject
    (each segment's as sent), client, template and segments, with ``note`` (Markdown) as
    its body; cancels the parent's pending rows. Raises NotFoundError, WorkflowError,
    InputError (an empty note)."""
    author = workflow.check_actor(author)
    if not note.strip():
        raise InputError("--note: say why the release is withdrawn")
    parent = _answerable(session, parent_id, ReleaseKind.WITHDRAWAL)
    prefix = prefix_of(ReleaseKind.WITHDRAWAL, settings)
    client = release_store.get_client_by_id(session, parent.client_id)
    rows = release_store.release_segments(session, parent.id)
    parsed = ReleaseFile(
        title=prefixed(parent.title, prefix),
        client=client.slug,
        subject=parent.subject,
        template=parent.template,
        segments=tuple(seg.slug for _, seg in rows),
        body=note.strip(),
        variants={
            seg.slug: VariantOverride(subject=row.subject, template=row.template)
            for row, seg in rows
            if row.subject is not None or row.template is not None
        },
        dateline=(parent.extra or {}).get("dateline"),
        topics=tuple((parent.extra or {}).get("topics") or ()),
    )
    return _create(
        session, parent, parsed, ReleaseKind.WITHDRAWAL, author=author, renderer=renderer, settings=settings, now=now
    )


def follow_up(
    session: Session,
    parent_id: int,
    text: str,
    *,
    author: str,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
    only: FollowUpFilter = FollowUpFilter.NO_RESPONSE,
) -> Release:
    """Writes: a draft follow-up of release ``parent_id`` from a release file (front matter
    as for :func:`correct`), to the parent's ``sent`` recipients minus who is suppressed or
    held (out of office) and, per ``only``, who replied and/or downloaded the kit (see
    :class:`FollowUpFilter`). The parent's rows are left alone. Raises NotFoundError,
    WorkflowError, InputError."""
    author = workflow.check_actor(author)
    parent = _answerable(session, parent_id, ReleaseKind.FOLLOW_UP)
    prefix = prefix_of(ReleaseKind.FOLLOW_UP, settings)
    parsed = parse_release(text, defaults=linked.defaults_from(session, parent, prefix))
    return _create(
        session,
        parent,
        parsed,
        ReleaseKind.FOLLOW_UP,
        author=author,
        renderer=renderer,
        settings=settings,
        now=now,
        only=only,
    )
