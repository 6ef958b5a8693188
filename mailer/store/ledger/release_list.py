"""Releases, newest first, and the segment slugs offered as filters (read only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.store.ledger.paging import AnySelect, Page, keyset
from mailer.store.tables import Client, Release, Segment


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
    return keyset(
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


def segment_slugs(session: Session) -> list[str]:
    """Every saved segment's slug (for filter choices)."""
    return list(session.scalars(select(Segment.slug).order_by(Segment.slug)))
