"""Read-only queries behind the staff pages and the JSON API.

Lists are keyset-paged by primary key (never OFFSET), so page 1000 costs what page 1
costs: ``after`` asks for the rows past the last one shown, ``before`` for the rows
before the first one shown. The delivery log is in ascending id order (planning order),
bounce and suppression lists newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from mailer.domain.states import DeliveryStatus, ReleaseStatus, SuppressionReason, email_hash
from mailer.store.db import transaction
from mailer.store.tables import Client, Contact, Delivery, DeliveryEvent, Release, Segment, Suppression, SuppressionLog

T = TypeVar("T")
#: A SELECT of any columns (SQLAlchemy 2.1 types a Select by its row).
AnySelect = Select[*tuple[Any, ...]]

#: Event kinds listed as bounces: DSNs received later (``bounced``, ``delayed``),
#: complaints, and refusals by the receiving server while sending (``failed``).
BOUNCE_KINDS = ("bounced", "complained", "delayed", "failed")
#: Most rows one page may hold.
MAX_PAGE = 500


@contextmanager
def read_only(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction for reading only: on SQLite a deferred BEGIN, so staff pages never
    queue behind (or block) the workers' writes. Errors as :func:`mailer.store.db.transaction`."""
    with transaction(factory) as session:
        session.connection(execution_options={"sqlite_deferred": True})
        yield session


@dataclass(frozen=True)
class Page(Generic[T]):
    """One keyset page: ``next_after`` / ``prev_before`` are the cursors of the pages
    next to it, None where there is nothing more in that direction."""

    rows: list[T]
    next_after: int | None
    prev_before: int | None


def _keyset(
    session: Session,
    query: AnySelect,
    id_col: Any,
    *,
    after: int | None,
    before: int | None,
    limit: int,
    descending: bool,
    make: Callable[[Any], T],
    key: Callable[[T], int],
) -> Page[T]:
    """Run ``query`` as a keyset page over ``id_col`` (``after`` wins over ``before``)."""
    limit = max(1, min(limit, MAX_PAGE))
    backwards = before is not None and after is None
    if after is not None:
        query = query.where(id_col < after if descending else id_col > after)
    elif before is not None:
        query = query.where(id_col > before if descending else id_col < before)
    # Walking backwards reads the rows nearest the cursor first, then restores page order.
    ascending = descending == backwards
    query = query.order_by(id_col.asc() if ascending else id_col.desc()).limit(limit + 1)
    rows = [make(r) for r in session.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    if not rows:
        return Page(rows, None, None)
    first, last = key(rows[0]), key(rows[-1])
    if backwards:
        return Page(rows, last, first if more else None)
    return Page(rows, last if more else None, first if after is not None else None)


# ============================================================================ dashboard


@dataclass(frozen=True)
class DueRelease:
    id: int
    title: str
    client: str
    status: str
    send_at: datetime | None


def releases_due(session: Session, *, now: datetime, within: timedelta, limit: int = 20) -> list[DueRelease]:
    """Submitted or approved releases whose send time falls before ``now + within``
    (overdue ones included), soonest first."""
    query = (
        select(Release.id, Release.title, Client.slug, Release.status, Release.send_at)
        .join(Client, Client.id == Release.client_id)
        .where(
            Release.status.in_([ReleaseStatus.SUBMITTED.value, ReleaseStatus.APPROVED.value]),
            Release.send_at.is_not(None),
            Release.send_at <= now + within,
        )
        .order_by(Release.send_at, Release.id)
        .limit(limit)
    )
    return [DueRelease(*row) for row in session.execute(query)]


@dataclass(frozen=True)
class Progress:
    """Where one release's sending stands."""

    id: int
    title: str
    status: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING))

    @property
    def deferred(self) -> int:
        return self.counts.get(DeliveryStatus.DEFERRED.value, 0)

    @property
    def done(self) -> int:
        return self.total - self.pending - self.deferred

    @property
    def percent(self) -> int:
        """Share of rows in a final state, 0-100 (100 for a release without rows)."""
        return 100 if self.total == 0 else int(100 * self.done / self.total)


def _counts(session: Session, release_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {rid: {} for rid in release_ids}
    if not release_ids:
        return out
    query = (
        select(Delivery.release_id, Delivery.status, func.count())
        .where(Delivery.release_id.in_(release_ids))
        .group_by(Delivery.release_id, Delivery.status)
    )
    for rid, status, n in session.execute(query):
        out[int(rid)][str(status)] = int(n)
    return out


def sending_now(session: Session) -> list[Progress]:
    """Releases being sent or paused, with their delivery counts by status."""
    releases = session.execute(
        select(Release.id, Release.title, Release.status)
        .where(Release.status.in_([ReleaseStatus.SENDING.value, ReleaseStatus.PAUSED.value]))
        .order_by(Release.id)
    ).all()
    counts = _counts(session, [r.id for r in releases])
    return [Progress(r.id, r.title, r.status, counts[r.id]) for r in releases]


def release_progress(session: Session, release_id: int) -> Progress | None:
    """Delivery counts of one release, or None when it does not exist."""
    row = session.execute(select(Release.id, Release.title, Release.status).where(Release.id == release_id)).first()
    if row is None:
        return None
    return Progress(row.id, row.title, row.status, _counts(session, [row.id])[row.id])


# ============================================================================ releases


@dataclass(frozen=True)
class ReleaseLine:
    id: int
    title: str
    client: str
    status: str
    author: str
    send_at: datetime | None
    updated_at: datetime


def releases(
    session: Session,
    *,
    status: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[ReleaseLine]:
    """Releases (optionally in one status), newest first."""
    query: AnySelect = select(
        Release.id, Release.title, Client.slug, Release.status, Release.author, Release.send_at, Release.updated_at
    ).join(Client, Client.id == Release.client_id)
    if status is not None:
        query = query.where(Release.status == status)
    return _keyset(
        session,
        query,
        Release.id,
        after=after,
        before=before,
        limit=limit,
        descending=True,
        make=lambda r: ReleaseLine(*r),
        key=lambda r: r.id,
    )


@dataclass(frozen=True)
class ReleaseSegmentLine:
    slug: str
    position: int
    subject: str | None
    counts: dict[str, int] = field(default_factory=dict)


def segment_slugs(session: Session) -> list[str]:
    """Every saved segment's slug (for filter choices)."""
    return list(session.scalars(select(Segment.slug).order_by(Segment.slug)))


def sent_per_minute(session: Session, release_id: int) -> list[tuple[datetime, int]]:
    """``(minute, messages sent in it)`` from ``deliveries.sent_at``, in time order."""
    if session.get_bind().dialect.name == "postgresql":
        minute: ColumnElement[Any] = func.date_trunc("minute", Delivery.sent_at)
    else:
        minute = func.strftime("%Y-%m-%dT%H:%M:00", Delivery.sent_at)
    query = (
        select(minute.label("minute"), func.count().label("n"))
        .where(Delivery.release_id == release_id, Delivery.sent_at.is_not(None))
        .group_by(minute)
        .order_by(minute)
    )
    out: list[tuple[datetime, int]] = []
    for row in session.execute(query):
        value, n = row[0], row[1]
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        out.append((at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC), int(n)))
    return out


# ========================================================================= delivery log


@dataclass(frozen=True)
class LogFilter:
    """The delivery log's filters; None means "any". ``email`` with an ``@`` matches the
    address exactly, otherwise any address containing it. Times bound ``updated_at``."""

    release_id: int | None = None
    status: str | None = None
    segment: str | None = None
    domain: str | None = None
    email: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class LogLine:
    id: int
    release_id: int
    contact_id: int
    email: str | None
    domain: str | None
    segment: str | None
    status: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    message_id: str
    sent_at: datetime | None
    updated_at: datetime


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def log_query(filters: LogFilter) -> AnySelect:
    """The delivery log's SELECT for ``filters`` (unordered, unpaged): the page, the
    export, the API and the benchmark all run this one query."""
    query: AnySelect = select(
        Delivery.id,
        Delivery.release_id,
        Delivery.contact_id,
        Delivery.email,
        Delivery.domain,
        Segment.slug,
        Delivery.status,
        Delivery.attempts,
        Delivery.last_code,
        Delivery.last_reply,
        Delivery.reason,
        Delivery.message_id,
        Delivery.sent_at,
        Delivery.updated_at,
    ).outerjoin(Segment, Segment.id == Delivery.segment_id)
    if filters.release_id is not None:
        query = query.where(Delivery.release_id == filters.release_id)
    if filters.status is not None:
        query = query.where(Delivery.status == filters.status)
    if filters.segment is not None:
        segment_id = select(Segment.id).where(Segment.slug == filters.segment).scalar_subquery()
        query = query.where(Delivery.segment_id == segment_id)
    if filters.domain is not None:
        query = query.where(Delivery.domain == filters.domain.strip().lower())
    if filters.email is not None:
        needle = filters.email.strip().lower()
        if "@" in needle:
            query = query.where(Delivery.email == needle)
        else:
            query = query.where(Delivery.email.like(f"%{_like_escape(needle)}%", escape="\\"))
    if filters.since is not None:
        query = query.where(Delivery.updated_at >= filters.since)
    if filters.until is not None:
        query = query.where(Delivery.updated_at < filters.until)
    return query


def delivery_log(
    session: Session,
    filters: LogFilter,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[LogLine]:
    """One page of the delivery log (ascending id)."""
    return _keyset(
        session,
        log_query(filters),
        Delivery.id,
        after=after,
        before=before,
        limit=limit,
        descending=False,
        make=lambda r: LogLine(*r),
        key=lambda r: r.id,
    )


# ============================================================================= bounces


@dataclass(frozen=True)
class BounceLine:
    id: int
    kind: str
    code: int | None
    detail: str | None
    at: datetime
    delivery_id: int | None
    release_id: int | None
    email: str | None


def bounces(
    session: Session,
    *,
    release_id: int | None = None,
    kind: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[BounceLine]:
    """Bounce, complaint and refusal events (see :data:`BOUNCE_KINDS`), newest first."""
    kinds = [kind] if kind in BOUNCE_KINDS else list(BOUNCE_KINDS)
    query: AnySelect = (
        select(
            DeliveryEvent.id,
            DeliveryEvent.kind,
            DeliveryEvent.code,
            DeliveryEvent.detail,
            DeliveryEvent.at,
            DeliveryEvent.delivery_id,
            Delivery.release_id,
            Delivery.email,
        )
        .outerjoin(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(DeliveryEvent.kind.in_(kinds))
    )
    if release_id is not None:
        query = query.where(Delivery.release_id == release_id)
    return _keyset(
        session,
        query,
        DeliveryEvent.id,
        after=after,
        before=before,
        limit=limit,
        descending=True,
        make=lambda r: BounceLine(*r),
        key=lambda r: r.id,
    )


# ========================================================================= suppressions


@dataclass(frozen=True)
class SuppressionLine:
    id: int
    email: str | None
    scope: str
    reason: str
    source: str
    created_at: datetime


def suppressions(
    session: Session,
    *,
    reason: str | None = None,
    scope: str | None = None,
    email: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[SuppressionLine]:
    """Suppressions, newest first; ``email`` matches by hash (so erased addresses are found)."""
    query = select(
        Suppression.id,
        Suppression.email,
        Suppression.scope,
        Suppression.reason,
        Suppression.source,
        Suppression.created_at,
    )
    if reason is not None:
        query = query.where(Suppression.reason == reason)
    if scope is not None:
        query = query.where(Suppression.scope == scope)
    if email is not None:
        query = query.where(Suppression.email_hash == email_hash(email.strip().lower()))
    return _keyset(
        session,
        query,
        Suppression.id,
        after=after,
        before=before,
        limit=limit,
        descending=True,
        make=lambda r: SuppressionLine(*r),
        key=lambda r: r.id,
    )


def recent_suppressions(session: Session, reasons: Sequence[SuppressionReason], *, limit: int) -> list[SuppressionLine]:
    """The newest suppressions with one of ``reasons``."""
    query = (
        select(
            Suppression.id,
            Suppression.email,
            Suppression.scope,
            Suppression.reason,
            Suppression.source,
            Suppression.created_at,
        )
        .where(Suppression.reason.in_([r.value for r in reasons]))
        .order_by(Suppression.id.desc())
        .limit(limit)
    )
    return [SuppressionLine(*r) for r in session.execute(query)]


# ====================================================================== contact history


@dataclass(frozen=True)
class HistoryDelivery:
    id: int
    release_id: int
    release_title: str
    segment: str | None
    status: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    sent_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class HistoryEvent:
    id: int
    delivery_id: int | None
    release_id: int | None
    kind: str
    code: int | None
    detail: str | None
    raw: str | None
    at: datetime


@dataclass(frozen=True)
class HistorySuppression:
    scope: str
    reason: str
    source: str
    created_at: datetime


@dataclass(frozen=True)
class HistoryChange:
    scope: str
    action: str
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class ContactHistory:
    """Everything recorded about one address."""

    email: str
    contact_id: int | None
    name: str
    outlet: str | None
    erased: bool
    deliveries: list[HistoryDelivery]
    events: list[HistoryEvent]
    suppressions: list[HistorySuppression]
    suppression_changes: list[HistoryChange]


def contact_history(session: Session, email: str, *, limit: int = 500) -> ContactHistory | None:
    """Deliveries (newest first), their events and the contact's own events (in time
    order), current suppressions and suppression changes of the normalized ``email``;
    None when the address was never a contact and never suppressed."""
    hashed = email_hash(email)
    contact = session.scalar(select(Contact).where(Contact.email_hash == hashed))
    sups = [
        HistorySuppression(s.scope, s.reason, s.source, s.created_at)
        for s in session.scalars(select(Suppression).where(Suppression.email_hash == hashed).order_by(Suppression.id))
    ]
    changes = [
        HistoryChange(c.scope, c.action, c.reason, c.actor, c.at)
        for c in session.scalars(
            select(SuppressionLog).where(SuppressionLog.email_hash == hashed).order_by(SuppressionLog.id)
        )
    ]
    if contact is None:
        if not sups and not changes:
            return None
        return ContactHistory(email, None, "", None, False, [], [], sups, changes)
    deliveries = [
        HistoryDelivery(*row)
        for row in session.execute(
            select(
                Delivery.id,
                Delivery.release_id,
                Release.title,
                Segment.slug,
                Delivery.status,
                Delivery.attempts,
                Delivery.last_code,
                Delivery.last_reply,
                Delivery.reason,
                Delivery.sent_at,
                Delivery.updated_at,
            )
            .join(Release, Release.id == Delivery.release_id)
            .outerjoin(Segment, Segment.id == Delivery.segment_id)
            .where(Delivery.contact_id == contact.id)
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
    ]
    delivery_ids = [d.id for d in deliveries]
    where = DeliveryEvent.contact_id == contact.id
    if delivery_ids:
        where = or_(where, DeliveryEvent.delivery_id.in_(delivery_ids))
    events = [
        HistoryEvent(*row)
        for row in session.execute(
            select(
                DeliveryEvent.id,
                DeliveryEvent.delivery_id,
                Delivery.release_id,
                DeliveryEvent.kind,
                DeliveryEvent.code,
                DeliveryEvent.detail,
                DeliveryEvent.raw,
                DeliveryEvent.at,
            )
            .outerjoin(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .where(where)
            .order_by(DeliveryEvent.at, DeliveryEvent.id)
            .limit(limit * 4)
        )
    ]
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    return ContactHistory(
        contact.email or email,
        contact.id,
        name,
        contact.outlet,
        contact.erased_at is not None,
        deliveries,
        events,
        sups,
        changes,
    )
