"""Release reports: counts by status, by segment and by recipient domain, and the
problems staff act on — hard and soft bounces, complaints and their rate, refusals of our
own sender — counted apart; and messages sent per minute (read only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, distinct, exists, func, not_, or_, select
from sqlalchemy.orm import Session

from mailer.domain.errors import NotFoundError
from mailer.domain.states import DeliveryStatus
from mailer.domain.status import FAULT_OF, Fault
from mailer.domain.status import HARD_REASONS as ADDRESS_DEAD
from mailer.store.assets import download_counts
from mailer.store.tables import Delivery, DeliveryEvent, Release, Segment

#: Delivery reasons that mean the address is dead: the live SMTP path's ``hard_bounce``
#: and the classifier's reasons (:data:`mailer.domain.status.HARD_REASONS`, the one source: a
#: disabled mailbox is soft) that bounce notices record.
HARD_REASONS = ("hard_bounce", *sorted(r.value for r in ADDRESS_DEAD))
#: Refusals that were our fault (our envelope sender, SPF/DKIM/DMARC, our IP's
#: reputation, a relay that will not relay for us): never the recipient's. The reasons
#: :data:`mailer.domain.status.FAULT_OF` puts on the sender.
SENDER_REASONS = tuple(sorted(r.value for r, fault in FAULT_OF.items() if fault is Fault.SENDER))
#: The event of a row handed back to the queue because a server refused our sender (the
#: engine's, and the bounce processor's for a notice that says so).
REQUEUED_EVENT = "requeued"
#: Reasons that are our own failures before anything was sent, not bounces.
NOT_BOUNCES = ("render_error",)
#: Gmail's bulk-sender guidelines: keep the spam (complaint) rate below 0.3 %.
COMPLAINT_RATE_LINE = 0.003
_UNDELIVERED = (DeliveryStatus.FAILED.value, DeliveryStatus.BOUNCED.value)


def sender_side(text: Any) -> ColumnElement[bool]:
    """``text`` (a delivery's reason, an event's kind or detail) names a refusal of our
    own sender: it starts with "sender" or with one of :data:`SENDER_REASONS`.

    The one place that says what counts as sender-side (the engine records these
    reasons on rows it puts back in the queue, and in their events' text).
    """
    return or_(
        text.startswith("sender", autoescape=True),
        *(text.startswith(reason, autoescape=True) for reason in SENDER_REASONS),
    )


@dataclass(frozen=True)
class ProblemCounts:
    """A release's problems, each counted apart (see :func:`problem_counts`)."""

    hard_bounces: int
    soft_bounces: int
    complaints: int
    delivered: int
    complaint_rate: float | None
    complaint_rate_high: bool
    sender_refusals: int
    sender_refusal_events: int


def problem_counts(session: Session, release_id: int) -> ProblemCounts:
    """The release's problems, each counted apart (deliveries, not notices):

    * ``hard_bounces`` — failed or bounced with a reason that means the address is dead;
    * ``soft_bounces`` — failed or bounced for any other reason, except our own
      sender-side refusals and render errors;
    * ``complaints`` — deliveries with a complaint (ARF / feedback loop), and
      ``complaint_rate`` = complaints / delivered (``sent`` rows; None before any),
      ``complaint_rate_high`` when above Gmail's 0.3 % line;
    * ``sender_refusals`` — deliveries refused because of us (row reason or any event),
      and ``sender_refusal_events``, every such refusal (a row may be tried again).
    """
    mine = Delivery.release_id == release_id
    reason = func.coalesce(Delivery.reason, "")
    undelivered = Delivery.status.in_(_UNDELIVERED)
    hard = and_(undelivered, reason.in_(HARD_REASONS))
    soft = and_(undelivered, not_(reason.in_(HARD_REASONS + NOT_BOUNCES)), not_(sender_side(reason)))
    sender_event = or_(
        DeliveryEvent.kind == REQUEUED_EVENT,
        sender_side(DeliveryEvent.kind),
        sender_side(func.coalesce(DeliveryEvent.detail, "")),
    )
    refused_event = exists(select(DeliveryEvent.id).where(DeliveryEvent.delivery_id == Delivery.id, sender_event))

    def count(condition: ColumnElement[bool]) -> int:
        return int(session.scalar(select(func.count()).select_from(Delivery).where(mine, condition)) or 0)

    def events(condition: ColumnElement[bool], *, distinct_rows: bool) -> int:
        counted = func.count(distinct(DeliveryEvent.delivery_id)) if distinct_rows else func.count()
        query = (
            select(counted)
            .select_from(DeliveryEvent)
            .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .where(mine, condition)
        )
        return int(session.scalar(query) or 0)

    delivered = count(Delivery.status == DeliveryStatus.SENT.value)
    complaints = events(DeliveryEvent.kind == "complained", distinct_rows=True)
    rate = complaints / delivered if delivered else None
    return ProblemCounts(
        hard_bounces=count(hard),
        soft_bounces=count(soft),
        complaints=complaints,
        delivered=delivered,
        complaint_rate=rate,
        complaint_rate_high=rate is not None and rate > COMPLAINT_RATE_LINE,
        sender_refusals=count(or_(sender_side(reason), refused_event)),
        sender_refusal_events=events(sender_event, distinct_rows=False),
    )


@dataclass(frozen=True)
class Wave:
    """Local-hour delivery: the rows of a release that may go from ``at`` (UTC) on, by status."""

    at: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def release_waves(session: Session, release_id: int) -> list[Wave]:
    """The release's waves (rows with a not-before), earliest first; [] when it has none."""
    waves: dict[datetime, dict[str, int]] = {}
    query = (
        select(Delivery.not_before, Delivery.status, func.count())
        .where(Delivery.release_id == release_id, Delivery.not_before.is_not(None))
        .group_by(Delivery.not_before, Delivery.status)
        .order_by(Delivery.not_before)
    )
    for at, status, n in session.execute(query):
        if at is not None:
            waves.setdefault(at, {})[status] = int(n)
    return [Wave(at, counts) for at, counts in sorted(waves.items())]


@dataclass(frozen=True)
class ReleaseReport:
    """One release's deliveries by status (``counts``), per segment slug and per
    recipient domain (the largest; ``""`` for erased rows), and its problems."""

    release: int
    title: str
    status: str
    pause_reason: str | None
    total: int
    counts: dict[str, int]
    segments: dict[str, dict[str, int]]
    domains: dict[str, dict[str, int]]
    problems: ProblemCounts
    #: local-hour delivery: when each group of rows may go (see :func:`release_waves`)
    waves: list[Wave] = field(default_factory=list)
    #: press-kit downloads (first-party clicks), and the recipients who made them
    kit_downloads: int = 0
    kit_downloaders: int = 0


def release_report(session: Session, release_id: int, *, top_domains: int = 20) -> ReleaseReport:
    """Counts by status, by segment and by recipient domain for one release, and its
    problems (:func:`problem_counts`). NotFoundError when there is no such release."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id} (see `mailer releases list`)")
    counts = {
        status: int(n)
        for status, n in session.execute(
            select(Delivery.status, func.count()).where(Delivery.release_id == release_id).group_by(Delivery.status)
        )
    }
    segments: dict[str, dict[str, int]] = {}
    for slug, status, n in session.execute(
        select(Segment.slug, Delivery.status, func.count())
        .join(Segment, Segment.id == Delivery.segment_id)
        .where(Delivery.release_id == release_id)
        .group_by(Segment.slug, Delivery.status)
    ):
        segments.setdefault(slug, {})[status] = int(n)
    domains: dict[str, dict[str, int]] = {}
    top = (
        select(Delivery.domain)
        .where(Delivery.release_id == release_id)
        .group_by(Delivery.domain)
        .order_by(func.count().desc(), Delivery.domain)
        .limit(top_domains)
    )
    for domain, status, n in session.execute(
        select(Delivery.domain, Delivery.status, func.count())
        .where(Delivery.release_id == release_id, Delivery.domain.in_(top))
        .group_by(Delivery.domain, Delivery.status)
    ):
        domains.setdefault(domain or "", {})[status] = int(n)
    downloads, downloaders = download_counts(session, release_id)
    return ReleaseReport(
        release=release.id,
        title=release.title,
        status=release.status,
        pause_reason=release.pause_reason,
        total=sum(counts.values()),
        counts=counts,
        segments=segments,
        domains=domains,
        problems=problem_counts(session, release_id),
        waves=release_waves(session, release_id),
        kit_downloads=downloads,
        kit_downloaders=downloaders,
    )


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
