"""The delivery log: who got what, who bounced and why, what is still queued (read
only). Ascending id order (planning order), keyset-paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.domain.states import email_hash
from mailer.store.address_rows import rows_to
from mailer.store.ledger.paging import AnySelect, Page, keyset
from mailer.store.tables import Delivery, Segment


@dataclass(frozen=True)
class LogFilter:
    """The delivery log's filters; None means "any". ``email`` with an ``@`` matches the
    address exactly, otherwise any address containing it. Times bound ``updated_at``."""

    release_id: int | None = None
    status: str | None = None
    segment: str | None = None
    domain: str | None = None
    email: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class LogLine:
    id: int
    release_id: int
    contact_id: int
    email: str | None
    domain: str | None
    segment: str | None
    status: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    message_id: str
    sent_at: datetime | None
    updated_at: datetime


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def log_query(filters: LogFilter) -> AnySelect:
    """The delivery log's SELECT for ``filters`` (unordered, unpaged): the page, the
    export, the API and the benchmark all run this one query."""
    query: AnySelect = select(
        Delivery.id,
        Delivery.release_id,
        Delivery.contact_id,
        Delivery.email,
        Delivery.domain,
        Segment.slug,
        Delivery.status,
        Delivery.attempts,
        Delivery.last_code,
        Delivery.last_reply,
        Delivery.reason,
        Delivery.message_id,
        Delivery.sent_at,
        Delivery.updated_at,
    ).outerjoin(Segment, Segment.id == Delivery.segment_id)
    if filters.release_id is not None:
        query = query.where(Delivery.release_id == filters.release_id)
    if filters.status is not None:
        query = query.where(Delivery.status == filters.status)
    if filters.segment is not None:
        segment_id = select(Segment.id).where(Segment.slug == filters.segment).scalar_subquery()
        query = query.where(Delivery.segment_id == segment_id)
    if filters.domain is not None:
        query = query.where(Delivery.domain == filters.domain.strip().lower())
    if filters.email is not None:
        needle = filters.email.strip().lower()
        if "@" in needle:
            # through the address's contacts (a row's hash is its address's)
            query = query.where(rows_to([email_hash(needle)]), Delivery.email == needle)
        else:
            query = query.where(Delivery.email.like(f"%{_like_escape(needle)}%", escape="\\"))
    if filters.since is not None:
        query = query.where(Delivery.updated_at >= filters.since)
    if filters.until is not None:
        query = query.where(Delivery.updated_at < filters.until)
    return query


def delivery_log(
    session: Session,
    filters: LogFilter,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[LogLine]:
    """One page of the delivery log (ascending id)."""
    return keyset(
        session,
        log_query(filters),
        Delivery.id,
        after=after,
        before=before,
        limit=limit,
        descending=False,
        make=lambda r: LogLine(*r),
        key=lambda r: r.id,
    )
