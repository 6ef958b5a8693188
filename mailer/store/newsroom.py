"""Queries of the newsroom: a client's published releases and the corrections and
withdrawals of releases (read only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from mailer.store.tables import Delivery, Release

__all__ = ["Published", "linked_releases", "published_releases"]


@dataclass(frozen=True)
class Published:
    """A release on a client's newsroom and when it went out (its first message, else
    its send time, else its last change)."""

    id: int
    title: str
    dateline: str | None
    published_at: datetime
    embargo_at: datetime | None
    #: a correction's or withdrawal's: what it answers and how (None: an ordinary release)
    parent_id: int | None = None
    kind: str | None = None
    subject: str = ""


def _published_at() -> Any:
    first_sent = (
        select(func.min(Delivery.sent_at)).where(Delivery.release_id == Release.id).correlate(Release).scalar_subquery()
    )
    return func.coalesce(first_sent, Release.send_at, Release.updated_at)


def _aware(value: object) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _lifted(now: datetime) -> Any:
    """The release and the release it answers (if any) are past their embargoes."""
    parent = aliased(Release)
    parent_embargoed = (
        select(parent.id)
        .where(parent.id == Release.parent_id, parent.embargo_at.is_not(None), parent.embargo_at > now)
        .correlate(Release)
        .exists()
    )
    return and_(or_(Release.embargo_at.is_(None), Release.embargo_at <= now), ~parent_embargoed)


def _rows(session: Session, *where: Any, limit: int, newest_first: bool) -> list[Published]:
    published = _published_at()
    order = (published.desc(), Release.id.desc()) if newest_first else (published.asc(), Release.id.asc())
    rows = session.execute(
        select(
            Release.id,
            Release.title,
            Release.extra,
            published.label("published"),
            Release.embargo_at,
            Release.parent_id,
            Release.kind,
            Release.subject,
        )
        .where(*where)
        .order_by(*order)
        .limit(limit)
    )
    return [
        Published(
            r.id,
            r.title,
            (r.extra or {}).get("dateline"),
            _aware(r.published),
            r.embargo_at,
            r.parent_id,
            r.kind,
            r.subject,
        )
        for r in rows
    ]


def published_releases(
    session: Session,
    client_id: int,
    *,
    statuses: Sequence[str],
    now: datetime,
    kinds: Sequence[str] = (),
    limit: int = 100,
) -> list[Published]:
    """The client's releases in ``statuses`` whose embargo (if any, and that of the release
    they answer) has lifted at ``now``, newest first: ordinary ones and those of ``kinds``."""
    kind_ok = or_(Release.kind.is_(None), Release.kind.in_(list(kinds))) if kinds else Release.kind.is_(None)
    where = (Release.client_id == client_id, Release.status.in_(list(statuses)), _lifted(now), kind_ok)
    return _rows(session, *where, limit=limit, newest_first=True)


def linked_releases(
    session: Session,
    parent_ids: Sequence[int],
    *,
    kinds: Sequence[str],
    statuses: Sequence[str],
    now: datetime,
    limit: int = 1000,
) -> list[Published]:
    """The releases of ``kinds`` answering any of ``parent_ids``, in ``statuses`` and past
    their embargoes (and their parent's) at ``now``, oldest first."""
    if not parent_ids:
        return []
    where = (
        Release.parent_id.in_(list(parent_ids)),
        Release.kind.in_(list(kinds)),
        Release.status.in_(list(statuses)),
        _lifted(now),
    )
    return _rows(session, *where, limit=limit, newest_first=False)
