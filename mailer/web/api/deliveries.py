"""``/api/deliveries``: the delivery log, filtered; the same query as the staff page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel

from mailer.domain.states import DeliveryStatus
from mailer.runtime import Runtime
from mailer.store.ledger.log import LogFilter, delivery_log
from mailer.store.ledger.paging import read_only
from mailer.web.api.params import NO_NUL, Cursor, Limit, utc
from mailer.web.paths import MAX_ID


class DeliveryOut(BaseModel):
    id: int
    release: int
    contact: int
    email: str | None
    domain: str | None
    segment: str | None
    status: DeliveryStatus
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    message_id: str
    sent_at: datetime | None
    updated_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_after: int | None
    prev_before: int | None


class DeliveryRoutes:
    """The delivery log route bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def list_deliveries(
        self,
        release: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        status: DeliveryStatus | None = None,
        segment: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        domain: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
        email: Annotated[
            str | None,
            Query(max_length=320, pattern=NO_NUL, description="An address (exact) or a part of one (contains)."),
        ] = None,
        since: Annotated[datetime | None, Query(description="updated_at at or after (UTC if no zone).")] = None,
        until: Annotated[datetime | None, Query(description="updated_at before (UTC if no zone).")] = None,
        after: Cursor = None,
        before: Cursor = None,
        limit: Limit = 100,
    ) -> DeliveryPage:
        """The delivery log (ascending id), filtered; the same query as the staff page."""
        filters = LogFilter(
            release_id=release,
            status=status.value if status else None,
            segment=segment or None,
            domain=domain or None,
            email=email or None,
            since=utc(since, "since"),
            until=utc(until, "until"),
        )
        with read_only(self.runtime.sessions) as session:
            page = delivery_log(session, filters, after=after, before=before, limit=limit)
        items = [
            DeliveryOut(
                id=r.id,
                release=r.release_id,
                contact=r.contact_id,
                email=r.email,
                domain=r.domain,
                segment=r.segment,
                status=DeliveryStatus(r.status),
                attempts=r.attempts,
                last_code=r.last_code,
                last_reply=r.last_reply,
                reason=r.reason,
                message_id=r.message_id,
                sent_at=r.sent_at,
                updated_at=r.updated_at,
            )
            for r in page.rows
        ]
        return DeliveryPage(items=items, next_after=page.next_after, prev_before=page.prev_before)
