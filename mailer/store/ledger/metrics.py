"""Read models behind GET /metrics: what the database knows, read at scrape time, so
every ``mailer web`` reports the same numbers whichever processes do the work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, func, literal_column, select
from sqlalchemy.orm import Session

from mailer.domain.states import DeliveryStatus
from mailer.store.tables import Delivery, DeliveryEvent, ReleaseEvent

#: The delivery events counted per release (bounces, complaints, replies, unsubscribes).
COUNTED_EVENTS = ("bounced", "complained", "replied", "reply", "unsubscribed", "bounce_warning")
#: The releases that get per-release series: the newest ones (bounded label cardinality).
RECENT_RELEASES = 50
#: Who pauses a release on a streak or a rate of refusals (mailer.engine.writer).
BREAKER_ACTOR = "mailer (circuit breaker)"


@dataclass(frozen=True)
class QueueState:
    """Rows waiting to be sent now, and how long the oldest of them has waited."""

    due: int
    oldest_due_seconds: float


def deliveries_by_status(session: Session) -> dict[str, int]:
    """Delivery rows per status, over all releases (counted per release and status, the
    order of ``ix_deliveries_release_status_id``: no sort of every row)."""
    out: dict[str, int] = {}
    rows = session.execute(
        select(Delivery.release_id, Delivery.status, func.count()).group_by(Delivery.release_id, Delivery.status)
    )
    for _release, status, count in rows:
        out[status] = out.get(status, 0) + int(count)
    return out


#: each status as SQL text, so each query may use its partial index of due rows
#: (``ix_deliveries_due_queued``, ``ix_deliveries_due_deferred``)
_WAITING = tuple(literal_column(f"'{s.value}'", String) for s in (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED))


def queue_state(session: Session, now: datetime) -> QueueState:
    """Queued or deferred rows whose time has come (queue depth), and the age of the
    oldest (since it became due: its retry time, else when it was queued)."""
    due_at = func.coalesce(Delivery.next_attempt_at, Delivery.updated_at)
    count, oldest = 0, None
    for status in _WAITING:
        waiting = (Delivery.status == status) & (
            (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now)
        )
        n, first = session.execute(select(func.count(), func.min(due_at)).where(waiting)).one()
        if isinstance(first, str):  # SQLite hands back COALESCE of two stamps as text
            first = datetime.fromisoformat(first)
        if first is not None and first.tzinfo is None:
            first = first.replace(tzinfo=now.tzinfo)
        count += int(n)
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    if oldest is None:
        return QueueState(count, 0.0)
    return QueueState(count, max((now - oldest).total_seconds(), 0.0))


def sent_since(session: Session, since: datetime) -> int:
    """Rows sent at or after ``since`` (the send rate over a window)."""
    return int(session.scalar(select(func.count()).where(Delivery.sent_at >= since)) or 0)


def events_per_release(session: Session) -> list[tuple[int, str, int]]:
    """(release id, event kind, count) of :data:`COUNTED_EVENTS` for the newest
    :data:`RECENT_RELEASES` releases that have deliveries."""
    recent = (
        select(Delivery.release_id).distinct().order_by(Delivery.release_id.desc()).limit(RECENT_RELEASES).subquery()
    )
    rows = session.execute(
        select(Delivery.release_id, DeliveryEvent.kind, func.count())
        .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(DeliveryEvent.kind.in_(COUNTED_EVENTS), Delivery.release_id.in_(select(recent.c.release_id)))
        .group_by(Delivery.release_id, DeliveryEvent.kind)
    )
    return [(int(rid), kind, int(count)) for rid, kind, count in rows]


def breaker_trips(session: Session) -> int:
    """How often the circuit breaker paused a release (every process, all time)."""
    return int(
        session.scalar(
            select(func.count()).where(ReleaseEvent.actor == BREAKER_ACTOR, ReleaseEvent.to_status == "paused")
        )
        or 0
    )


def window(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)
