"""The "embargo lifted" note (issue 16, optional): a follow-up of an embargoed release,
sent at the lift to exactly those the release was sent to.

It is a follow-up like any other (:mod:`mailer.releases.threads`): a **draft** linked to
the parent, submitted and approved as any release, planned from the parent's ledger (its
``sent`` rows, minus anyone suppressed or held since; :class:`FollowUpFilter` ``everyone``:
repliers and kit downloaders get it too) and threaded under the message each journalist
got. Its send time is the parent's embargo; its default text names the release and its
newsroom page, public from the lift.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.conversations import FollowUpFilter, ReleaseKind, can_answer, prefixed
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.message import Renderer
from mailer.releases import linked, workflow
from mailer.releases.authoring import create_parsed
from mailer.releases.plan import newsroom_path
from mailer.releases.source import ReleaseFile, VariantOverride
from mailer.store import releases as release_store
from mailer.store.tables import Release

__all__ = ["LIFT_PREFIX", "default_text", "lift_note"]

#: In front of the note's title and subject (kept through edits, as a follow-up's prefix).
LIFT_PREFIX = "Embargo lifted:"


def default_text(title: str, page_url: str) -> str:
    """The note's body when the author gives none (Markdown; the title is data, not a template)."""
    shown = f"{{% raw %}}{title}{{% endraw %}}" if any(c in title for c in ("{{", "{%", "{#")) else title
    return f"The embargo on \u201c{shown}\u201d has lifted; the release is now public at <{page_url}>.\n"


def lift_note(
    session: Session,
    parent_id: int,
    *,
    body: str | None,
    author: str,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
) -> Release:
    """Writes: a draft "embargo lifted" note of release ``parent_id`` (see the module
    docstring): the parent's subject (per segment too), client, template and segments with
    :data:`LIFT_PREFIX`, ``body`` (Markdown; None: :func:`default_text`), to be sent at the
    parent's embargo. Raises NotFoundError; WorkflowError when the parent has no embargo,
    has not started sending, or its embargo has already lifted; InputError (an empty body)."""
    author = workflow.check_actor(author)
    if body is not None and not body.strip():
        raise InputError("--body: the file is empty (leave --body out for the default text)")
    parent = release_store.get_release(session, parent_id, for_update=True)
    status = ReleaseStatus(parent.status)
    if parent.embargo_at is None:
        raise WorkflowError(f"release {parent_id} has no embargo: there is no lift to announce")
    if parent.embargo_at <= now:
        raise WorkflowError(
            f"the embargo of release {parent_id} lifted at {parent.embargo_at:%Y-%m-%d %H:%M} UTC: "
            "a note now would come after the news (send a follow-up instead)"
        )
    if not can_answer(status):
        raise WorkflowError(
            f"release {parent_id} is {status.value}: an embargo-lifted note goes to those the release was sent to, "
            "so it can be created once the release has started sending"
        )
    client = release_store.get_client_by_id(session, parent.client_id)
    rows = release_store.release_segments(session, parent.id)
    page = settings.web.base_url.rstrip("/") + newsroom_path(client.slug, parent.id)
    parsed = ReleaseFile(
        title=prefixed(parent.title, LIFT_PREFIX),
        client=client.slug,
        subject=parent.subject,
        template=parent.template,
        segments=tuple(seg.slug for _, seg in rows),
        body=(body if body is not None else default_text(parent.title, page)).strip() + "\n",
        variants={
            seg.slug: VariantOverride(subject=row.subject, template=row.template)
            for row, seg in rows
            if row.subject is not None or row.template is not None
        },
        topics=tuple((parent.extra or {}).get("topics") or ()),
        send_at=parent.embargo_at,
    )
    parsed = linked.with_prefix(parsed, LIFT_PREFIX)

    def fill(release: Release) -> str:
        release.parent_id = parent.id
        release.kind = ReleaseKind.FOLLOW_UP.value
        release.follow_up_filter = FollowUpFilter.EVERYONE.value
        linked.keep_prefix(release, LIFT_PREFIX)
        return f"created: embargo-lifted note of release {parent.id}, to go at the lift"

    return create_parsed(session, parsed, author=author, renderer=renderer, now=now, link=fill)
