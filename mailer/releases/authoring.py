"""Authoring: a release file becomes a draft release, or replaces a release's content.

The file is parsed by :mod:`mailer.releases.source`; here its client, segments and
templates are looked up. Editing a submitted or approved release returns it to draft (a
change after approval needs approval again); every edit is recorded in the history.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import ReleaseAction, ReleaseStatus, allowed_actions
from mailer.domain.when import require_future
from mailer.message import Renderer
from mailer.releases import history, holds, linked, notify, workflow
from mailer.releases.source import ReleaseFile, VariantOverride, parse_release
from mailer.store import releases as release_store
from mailer.store.tables import Client, Release, ReleaseSegment, Segment

__all__ = ["DraftRelease", "create_parsed", "create_release", "draft_release", "update_release"]

_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")


def _check_template(renderer: Renderer, name: str, key: str) -> None:
    if (
        not _TEMPLATE_NAME.fullmatch(name)
        or name == "base"
        or not all(f"{name}{suffix}" in renderer.sources for suffix in (".html", ".txt"))
    ):
        have = sorted(
            n.removesuffix(".html")
            for n in renderer.sources
            if n.endswith(".html") and "/" not in n and n != "base.html"
        )
        raise InputError(f"{key}: no template {name!r} in {renderer.templates_dir} (have: {', '.join(have)})")


def _resolve(session: Session, parsed: ReleaseFile, renderer: Renderer) -> tuple[Client, list[ReleaseSegment]]:
    """Look up the client, segments and templates the file names; InputError naming the key."""
    client = release_store.find_client(session, parsed.client)
    if client is None:
        raise InputError(f"client: no client {parsed.client!r} (see `mailer clients list`)")
    _check_template(renderer, parsed.template, "template")
    found = release_store.find_segments(session, parsed.segments)
    rows: list[ReleaseSegment] = []
    for position, slug in enumerate(parsed.segments):
        if slug not in found:
            raise InputError(f"segments: no segment {slug!r} (see `mailer segments list`)")
        variant = parsed.variants.get(slug, VariantOverride())
        if variant.template is not None:
            _check_template(renderer, variant.template, f"variants.{slug}.template")
        rows.append(
            ReleaseSegment(
                segment_id=found[slug].id,
                position=position,
                subject=variant.subject,
                intro=variant.intro,
                template=variant.template,
                body=variant.body,
            )
        )
    return client, rows


def _check_times(parsed: ReleaseFile, now: datetime) -> None:
    """InputError when the file's send_at or not_after is already past (issue 21: a
    mistyped date sent a release at once)."""
    if parsed.send_at is not None:
        require_future(
            parsed.send_at,
            now,
            "send_at",
            hint="leave send_at out and use `mailer releases schedule ID --now` to send at once",
        )
    if parsed.not_after is not None:
        require_future(parsed.not_after, now, "not_after")


def _apply(release: Release, parsed: ReleaseFile, client: Client) -> None:
    release.client_id = client.id
    release.title = parsed.title
    release.subject = parsed.subject
    release.template = parsed.template
    release.body = parsed.body
    release.extra = parsed.extra()
    release.send_at = parsed.send_at.astimezone(UTC) if parsed.send_at else None
    release.not_after = parsed.not_after.astimezone(UTC) if parsed.not_after else None
    release.embargo_at = parsed.embargo.astimezone(UTC) if parsed.embargo else None
    # local-hour delivery: send_at is then the first wave (see mailer.domain.localtime)
    release.send_at_local = parsed.send_at_local
    release.timezone = parsed.timezone


@dataclass(frozen=True)
class DraftRelease:
    """A release file checked like :func:`create_release` checks it, as objects that are
    never added to the session (the web editor's live preview renders from them)."""

    release: Release
    client: Client
    segments: list[tuple[ReleaseSegment, Segment]]


def draft_release(
    session: Session, text: str, *, renderer: Renderer, now: datetime, release_id: int | None = None
) -> DraftRelease:
    """Read-only: parse and resolve ``text`` with the checks of :func:`create_release`
    (InputError naming the key), into a transient release numbered ``release_id`` (0 for
    a new one). Nothing is written."""
    parsed = parse_release(text)
    _check_times(parsed, now)
    client, rows = _resolve(session, parsed, renderer)
    release = Release(id=release_id or 0, status=ReleaseStatus.DRAFT.value, author="", created_at=now, updated_at=now)
    _apply(release, parsed, client)
    found = release_store.find_segments(session, parsed.segments)
    return DraftRelease(release, client, [(row, found[slug]) for row, slug in zip(rows, parsed.segments, strict=True)])


def create_release(session: Session, text: str, *, author: str, renderer: Renderer, now: datetime) -> Release:
    """Writes: a new draft release from a release file, its segments and a creation event.

    Raises InputError (naming the key) for a bad file or an unknown client, segment or
    template.
    """
    return create_parsed(session, parse_release(text), author=author, renderer=renderer, now=now)


def create_parsed(
    session: Session,
    parsed: ReleaseFile,
    *,
    author: str,
    renderer: Renderer,
    now: datetime,
    link: Callable[[Release], str] | None = None,
) -> Release:
    """Writes: :func:`create_release` from a parsed file. ``link`` (a linked release:
    :mod:`mailer.releases.threads`) fills the new row's link columns before its creation
    event is recorded and returns the event's note."""
    author = workflow.check_actor(author)
    _check_times(parsed, now)
    client, rows = _resolve(session, parsed, renderer)
    release = Release(status=ReleaseStatus.DRAFT.value, author=author, created_at=now, updated_at=now)
    _apply(release, parsed, client)
    note = link(release) if link is not None else "created"
    release_store.insert_release(session, release)
    for row in rows:
        row.release_id = release.id
    release_store.replace_release_segments(session, release.id, rows)
    release_store.add_editor(session, release.id, author, now=now)
    history.record(session, release.id, from_status=None, to_status=release.status, actor=author, note=note, now=now)
    return release


def update_release(
    session: Session,
    release_id: int,
    text: str,
    *,
    actor: str,
    renderer: Renderer,
    now: datetime,
    settings: Settings | None = None,
) -> Release:
    """Writes: replace the release's content with a release file.

    A submitted or approved release returns to draft (its stored hash is cleared and the
    approval no longer matches); the move is recorded. Releases that are sending or
    finished cannot be edited (WorkflowError). Raises InputError as :func:`create_release`.
    """
    actor = workflow.check_actor(actor)
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if ReleaseAction.EDIT not in allowed_actions(status):
        raise WorkflowError(f"release {release_id} is {status.value}: it can no longer be edited")
    if release.parent_id is not None:
        # a correction, withdrawal or follow-up: the parent supplies what the file leaves
        # out, and the subject keeps its prefix
        prefix = linked.stored_prefix(release)
        parent = release_store.get_release(session, release.parent_id)
        parsed = linked.with_prefix(parse_release(text, defaults=linked.defaults_from(session, parent, prefix)), prefix)
    else:
        prefix, parsed = "", parse_release(text)
    _check_times(parsed, now)
    client, rows = _resolve(session, parsed, renderer)
    _apply(release, parsed, client)
    if release.parent_id is not None:
        linked.keep_prefix(release, prefix)
    for row in rows:
        row.release_id = release.id
    release_store.replace_release_segments(session, release.id, rows)
    release_store.add_editor(session, release.id, actor, now=now)
    note = "edited"
    if status is not ReleaseStatus.DRAFT:
        note = f"edited while {status.value}: back to draft, approval needed again"
    workflow.move(session, release.id, ReleaseStatus.DRAFT, actor=actor, now=now, note=note, src=status)
    release.content_hash = None
    holds.clear(release)
    returned = status is not ReleaseStatus.DRAFT and release.author.casefold() != actor.casefold()
    if settings is not None and settings.notify.enabled and returned:
        notify.tell_author(
            session,
            release.id,
            kind="returned-draft",
            what="is back to draft",
            text=f"{actor} edited release {release.id} while it was {status.value}: it is a draft again.",
            settings=settings,
            now=now,
        )
    return release
