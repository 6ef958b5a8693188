"""Read-only queries staff use: release reports and the delivery log (keyset paged)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.errors import NotFoundError
from mailer.tables import Delivery, Release, Segment


def release_report(session: Session, release_id: int, *, top_domains: int = 20) -> dict[str, Any]:
    """Counts by status, by segment and by recipient domain for one release."""
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
    return {
        "release": release.id,
        "title": release.title,
        "status": release.status,
        "pause_reason": release.pause_reason,
        "total": sum(counts.values()),
        "counts": counts,
        "segments": segments,
        "domains": domains,
    }


@dataclass(frozen=True)
class LogRow:
    id: int
    release_id: int
    email: str | None
    segment: str | None
    status: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    message_id: str
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "release": self.release_id,
            "email": self.email,
            "segment": self.segment,
            "status": self.status,
            "attempts": self.attempts,
            "last_code": self.last_code,
            "last_reply": self.last_reply,
            "reason": self.reason,
            "message_id": self.message_id,
            "updated_at": self.updated_at.isoformat(),
        }


def delivery_log(
    session: Session,
    *,
    release_id: int | None = None,
    status: str | None = None,
    email: str | None = None,
    domain: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[LogRow]:
    """Ledger rows matching the filters, by id after ``after_id`` (keyset paging)."""
    query = (
        select(
            Delivery.id,
            Delivery.release_id,
            Delivery.email,
            Segment.slug,
            Delivery.status,
            Delivery.attempts,
            Delivery.last_code,
            Delivery.last_reply,
            Delivery.reason,
            Delivery.message_id,
            Delivery.updated_at,
        )
        .outerjoin(Segment, Segment.id == Delivery.segment_id)
        .where(Delivery.id > after_id)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if release_id is not None:
        query = query.where(Delivery.release_id == release_id)
    if status is not None:
        query = query.where(Delivery.status == status)
    if email is not None:
        query = query.where(Delivery.email == email.strip().lower())
    if domain is not None:
        query = query.where(Delivery.domain == domain.strip().lower())
    return [LogRow(*row) for row in session.execute(query)]
