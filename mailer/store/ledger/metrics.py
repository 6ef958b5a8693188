"""Read models behind GET /metrics: what the database knows, read at scrape time, so
every ``mailer web`` reports the same numbers whichever processes do the work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
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
    """Delivery rows per status, over all releases."""
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return {status: int(count) for status, count in rows}


def queue_state(session: Session, now: datetime) -> QueueState:
    """Queued or deferred rows whose time has come (queue depth), and the age of the
    oldest (since it became due: its retry time, else when it was queued)."""
    due_at = func.coalesce(Delivery.next_attempt_at, Delivery.updated_at)
    waiting = (Delivery.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value])) & (
        (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now)
    )
    count, oldest = session.execute(select(func.count(), func.min(due_at)).where(waiting)).one()
    if oldest is None:
        return QueueState(int(count), 0.0)
    if isinstance(oldest, str):  # SQLite hands back COALESCE of two stamps as text
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return QueueState(int(count), max((now - oldest).total_seconds(), 0.0))


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
