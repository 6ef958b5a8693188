"""Leases on claimed rows: renewed by a live worker, handed back on a clean stop, swept
when a worker died (rows in the data exchange become ``unknown``, never resent
automatically; the others return to the queue). See :mod:`mailer.store.queue`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    insert,
    literal_column,
    text,
    update,
)
from sqlalchemy.orm import Session

from mailer.domain.states import DeliveryStatus
from mailer.store.deliveries import rowcount
from mailer.store.tables import Delivery, DeliveryEvent

#: the deliveries table for Core statements (typed as a Table for mypy)
DELIVERIES = cast(Table, Delivery.__table__)
_EVENTS = cast(Table, DeliveryEvent.__table__)
_SYNC_OFF = text("SET LOCAL synchronous_commit = off")
#: ``status = 'sending'`` as SQL text, not a bound value: ``ix_deliveries_lease`` holds the
#: ``sending`` rows only (migration 0021), and SQLite uses a partial index only when the
#: query repeats its WHERE literally
_SENDING: ColumnElement[str] = literal_column(f"'{DeliveryStatus.SENDING.value}'", String)


def release_leases(session: Session, owner: str, now: datetime) -> int:
    """Writes: on a clean stop, hand rows claimed but not in the data exchange back to the queue."""
    return rowcount(
        session.execute(
            update(Delivery)
            .where(
                Delivery.lease_owner == owner,
                Delivery.status == _SENDING,
                Delivery.in_data.is_(False),
            )
            .values(status=DeliveryStatus.QUEUED.value, lease_owner=None, lease_expires_at=None, updated_at=now)
        )
    )


def renew_leases(session: Session, owner: str, now: datetime, lease: timedelta) -> int:
    """Writes: a live worker extends the leases of everything it holds."""
    return rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.lease_owner == owner, Delivery.status == _SENDING)
            .values(lease_expires_at=now + lease)
        )
    )


def sweep_expired_leases(session: Session, now: datetime) -> tuple[int, int]:
    """Writes: rows of dead workers. In the data exchange → ``unknown``; else → ``queued``.

    Returns (requeued, unknown).
    """
    expired = and_(
        Delivery.status == _SENDING,
        Delivery.lease_expires_at.is_not(None),
        Delivery.lease_expires_at < now,
    )
    unknown_ids = list(
        session.scalars(
            update(Delivery)
            .where(expired, Delivery.in_data.is_(True))
            .values(
                status=DeliveryStatus.UNKNOWN.value,
                reason="worker died during the data exchange",
                in_data=False,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(Delivery.id)
        )
    )
    if unknown_ids:
        session.execute(
            insert(DeliveryEvent),
            [
                {"delivery_id": i, "kind": "unknown", "detail": "lease expired during the data exchange", "at": now}
                for i in unknown_ids
            ],
        )
    requeued = rowcount(
        session.execute(
            update(Delivery)
            .where(expired, Delivery.in_data.is_(False))
            .values(status=DeliveryStatus.QUEUED.value, lease_owner=None, lease_expires_at=None, updated_at=now)
        )
    )
    return requeued, len(unknown_ids)
