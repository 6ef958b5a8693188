"""``/api/contacts/{email}``: everything recorded about one address."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Path
from pydantic import BaseModel, Field

from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError
from mailer.runtime import Runtime
from mailer.store.ledger.history import contact_history
from mailer.store.ledger.paging import read_only
from mailer.web.api.params import NO_NUL


class ContactDeliveryOut(BaseModel):
    id: int
    release: int
    release_title: str
    segment: str | None
    status: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    sent_at: datetime | None
    updated_at: datetime


class ContactEventOut(BaseModel):
    id: int
    delivery: int | None
    release: int | None
    kind: str
    code: int | None
    detail: str | None
    raw: str | None = Field(description="The raw bounce message as received (truncated to bounces.keep_raw_bytes).")
    at: datetime


class ContactSuppressionOut(BaseModel):
    scope: str
    reason: str
    source: str
    created_at: datetime


class ContactOut(BaseModel):
    email: str
    name: str
    outlet: str | None
    erased: bool
    deliveries: list[ContactDeliveryOut]
    events: list[ContactEventOut]
    suppressions: list[ContactSuppressionOut]


class ContactRoutes:
    """The contact route bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def get_contact(self, email: Annotated[str, Path(max_length=320, pattern=NO_NUL)]) -> ContactOut:
        """Everything recorded about one address: deliveries, events (with raw bounces),
        suppressions."""
        try:
            address = normalize_email(email)
        except InputError:
            address = email.strip().lower()
        with read_only(self.runtime.sessions) as session:
            history = contact_history(session, address)
        if history is None:
            raise HTTPException(404, "nothing recorded about this address")
        return ContactOut(
            email=history.email,
            name=history.name,
            outlet=history.outlet,
            erased=history.erased,
            deliveries=[
                ContactDeliveryOut(
                    id=d.id,
                    release=d.release_id,
                    release_title=d.release_title,
                    segment=d.segment,
                    status=d.status,
                    attempts=d.attempts,
                    last_code=d.last_code,
                    last_reply=d.last_reply,
                    reason=d.reason,
                    sent_at=d.sent_at,
                    updated_at=d.updated_at,
                )
                for d in history.deliveries
            ],
            events=[
                ContactEventOut(
                    id=e.id,
                    delivery=e.delivery_id,
                    release=e.release_id,
                    kind=e.kind,
                    code=e.code,
                    detail=e.detail,
                    raw=e.raw,
                    at=e.at,
                )
                for e in history.events
            ],
            suppressions=[ContactSuppressionOut(**vars(s)) for s in history.suppressions],
        )
