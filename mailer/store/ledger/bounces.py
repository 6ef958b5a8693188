"""Bounce, complaint and refusal events, newest first (read only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.store.ledger.paging import AnySelect, Page, keyset
from mailer.store.tables import Delivery, DeliveryEvent

#: Event kinds listed as bounces: DSNs received later (``bounced``, ``delayed``),
#: complaints, and refusals by the receiving server while sending (``failed``).
BOUNCE_KINDS = ("bounced", "complained", "delayed", "failed")


@dataclass(frozen=True)
class BounceLine:
    id: int
    kind: str
    code: int | None
    detail: str | None
    at: datetime
    delivery_id: int | None
    release_id: int | None
    email: str | None


def bounces(
    session: Session,
    *,
    release_id: int | None = None,
    kind: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[BounceLine]:
    """Bounce, complaint and refusal events (see :data:`BOUNCE_KINDS`), newest first."""
    kinds = [kind] if kind in BOUNCE_KINDS else list(BOUNCE_KINDS)
    query: AnySelect = (
        select(
            DeliveryEvent.id,
            DeliveryEvent.kind,
            DeliveryEvent.code,
            DeliveryEvent.detail,
            DeliveryEvent.at,
            DeliveryEvent.delivery_id,
            Delivery.release_id,
            Delivery.email,
        )
        .outerjoin(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(DeliveryEvent.kind.in_(kinds))
    )
    if release_id is not None:
        query = query.where(Delivery.release_id == release_id)
    return keyset(
        session,
        query,
        DeliveryEvent.id,
        after=after,
        before=before,
        limit=limit,
        descending=True,
        make=lambda r: BounceLine(*r),
        key=lambda r: r.id,
    )
