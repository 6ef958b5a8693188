"""What the dashboard shows: releases due soon, releases sending now, and where one
release's sending stands (read only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.store.tables import Client, Delivery, Release


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
class ReleaseProgress:
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


def delivery_counts(session: Session, release_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Deliveries by status of each of ``release_ids`` (every id present, maybe empty)."""
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


def sending_now(session: Session) -> list[ReleaseProgress]:
    """Releases being planned, sent or paused, with their delivery counts by status."""
    running = [ReleaseStatus.PLANNING.value, ReleaseStatus.SENDING.value, ReleaseStatus.PAUSED.value]
    releases = session.execute(
        select(Release.id, Release.title, Release.status).where(Release.status.in_(running)).order_by(Release.id)
    ).all()
    counts = delivery_counts(session, [r.id for r in releases])
    return [ReleaseProgress(r.id, r.title, r.status, counts[r.id]) for r in releases]


def release_progress(session: Session, release_id: int) -> ReleaseProgress | None:
    """Delivery counts of one release, or None when it does not exist."""
    row = session.execute(select(Release.id, Release.title, Release.status).where(Release.id == release_id)).first()
    if row is None:
        return None
    return ReleaseProgress(row.id, row.title, row.status, delivery_counts(session, [row.id])[row.id])
