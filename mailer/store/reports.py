"""Release reports: counts by status, by segment and by recipient domain (read only)."""

from __future__ import annotations

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
