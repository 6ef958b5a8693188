"""Queries of the newsroom: a client's published releases (read only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailer.store.tables import Delivery, Release

__all__ = ["Published", "published_releases"]


@dataclass(frozen=True)
class Published:
    """A release on a client's newsroom and when it went out (its first message, else
    its send time, else its last change)."""

    id: int
    title: str
    dateline: str | None
    published_at: datetime
    embargo_at: datetime | None


def published_releases(
    session: Session, client_id: int, *, statuses: Sequence[str], now: datetime, limit: int = 100
) -> list[Published]:
    """The client's releases in ``statuses`` whose embargo (if any) has lifted at ``now``,
    newest first."""
    first_sent = (
        select(func.min(Delivery.sent_at)).where(Delivery.release_id == Release.id).correlate(Release).scalar_subquery()
    )
    published = func.coalesce(first_sent, Release.send_at, Release.updated_at)
    rows = session.execute(
        select(Release.id, Release.title, Release.extra, published.label("published"), Release.embargo_at)
        .where(
            Release.client_id == client_id,
            Release.status.in_(list(statuses)),
            or_(Release.embargo_at.is_(None), Release.embargo_at <= now),
        )
        .order_by(published.desc(), Release.id.desc())
        .limit(limit)
    )
    out: list[Published] = []
    for r in rows:
        at = r.published if isinstance(r.published, datetime) else datetime.fromisoformat(str(r.published))
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        out.append(Published(r.id, r.title, (r.extra or {}).get("dateline"), at, r.embargo_at))
    return out
