"""One release as staff see it: content summary, client, segments with their variant
overrides, approvals, workflow history, proofs and editors (read only).

The one assembly behind ``mailer releases show``, the staff release page (and its
confirmation pages) and ``GET /api/releases/{id}``; each presents the fields it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.domain.states import ReleaseStatus
from mailer.store import proofs as proof_store
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.tables import Release

#: The rule for a release's effective "not after" time (it lives above the store, in
#: :func:`mailer.releases.holds.effective_not_after`; the caller passes it in).
NotAfterRule = Callable[[Session, Release], datetime | None]


@dataclass(frozen=True)
class SegmentVariant:
    """One segment of the release and what it overrides (None: the release's own)."""

    slug: str
    position: int
    rule: str
    subject: str | None
    intro: str | None
    template: str | None

    @property
    def overrides(self) -> bool:
        """True when the segment changes the subject, intro or template."""
        return self.subject is not None or self.intro is not None or self.template is not None


@dataclass(frozen=True)
class ApprovalLine:
    approver: str
    content_hash: str
    approved_at: datetime


@dataclass(frozen=True)
class MoveLine:
    """One move of the release's workflow (``from_status`` None for its creation)."""

    from_status: str | None
    to_status: str
    actor: str
    note: str | None
    at: datetime


@dataclass(frozen=True)
class ProofLine:
    to_address: str
    result: str
    content_hash: str
    sent_at: datetime


@dataclass(frozen=True)
class ReleaseDetail:
    """Everything staff see about one release but its deliveries (see
    :mod:`mailer.store.ledger.report` for those). ``client`` is the client's slug;
    ``content_hash`` the hash frozen at submission; ``not_after`` the effective limit
    (None: no limit, or no rule given)."""

    id: int
    title: str
    client: str
    client_name: str
    status: str
    author: str
    subject: str
    template: str
    content_hash: str | None
    pause_reason: str | None
    hold_reason: str | None
    send_at: datetime | None
    not_after: datetime | None
    embargo_at: datetime | None
    created_at: datetime
    updated_at: datetime
    editors: list[str]
    segments: list[SegmentVariant]
    approvals: list[ApprovalLine]
    history: list[MoveLine]
    proofs: list[ProofLine]
    #: a correction, withdrawal or follow-up: its kind and the release it answers
    kind: str | None = None
    parent_id: int | None = None
    #: the releases that answer this one
    linked: list[release_store.LinkedRow] = field(default_factory=list)
    #: local-hour delivery: the wall-clock time in each contact's zone, and the fallback zone
    send_at_local: str | None = None
    timezone: str | None = None

    @property
    def waiting(self) -> str | None:
        """Why an approved release has not started (a person must act), else None."""
        return self.hold_reason if self.status == ReleaseStatus.APPROVED.value else None


def release_detail(session: Session, release_id: int, *, not_after: NotAfterRule | None = None) -> ReleaseDetail:
    """The release ``release_id``; ``not_after`` computes its effective limit. Raises
    NotFoundError when there is no such release."""
    release = release_store.get_release(session, release_id)
    client = release_store.get_client_by_id(session, release.client_id)
    return ReleaseDetail(
        id=release.id,
        title=release.title,
        client=client.slug,
        client_name=client.name,
        status=release.status,
        author=release.author,
        subject=release.subject,
        template=release.template,
        content_hash=release.content_hash,
        pause_reason=release.pause_reason,
        hold_reason=release.hold_reason,
        send_at=release.send_at,
        not_after=not_after(session, release) if not_after is not None else None,
        embargo_at=release.embargo_at,
        created_at=release.created_at,
        updated_at=release.updated_at,
        editors=release_store.release_editors(session, release_id),
        segments=[
            SegmentVariant(seg.slug, row.position, seg.rule, row.subject, row.intro, row.template)
            for row, seg in release_store.release_segments(session, release_id)
        ],
        approvals=[
            ApprovalLine(a.approver, a.content_hash, a.approved_at)
            for a in review_store.release_approvals(session, release_id)
        ],
        history=[
            MoveLine(e.from_status, e.to_status, e.actor, e.note, e.at)
            for e in release_store.release_events(session, release_id)
        ],
        proofs=[
            ProofLine(p.to_address, p.result, p.content_hash, p.sent_at)
            for p in proof_store.release_proofs(session, release_id)
        ],
        kind=release.kind,
        parent_id=release.parent_id,
        linked=release_store.linked_releases(session, release_id),
        send_at_local=release.send_at_local,
        timezone=release.timezone,
    )
