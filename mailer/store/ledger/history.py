"""Everything recorded about one address: deliveries, their events, suppressions and
suppression changes (read only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailer.domain.states import email_hash
from mailer.store.tables import Contact, Delivery, DeliveryEvent, Release, Segment, Suppression, SuppressionLog


@dataclass(frozen=True)
class HistoryDelivery:
    id: int
    release_id: int
    release_title: str
    segment: str | None
    status: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    sent_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class HistoryEvent:
    id: int
    delivery_id: int | None
    release_id: int | None
    kind: str
    code: int | None
    detail: str | None
    raw: str | None
    at: datetime


@dataclass(frozen=True)
class HistorySuppression:
    scope: str
    reason: str
    source: str
    created_at: datetime


@dataclass(frozen=True)
class HistoryChange:
    scope: str
    action: str
    reason: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class ContactHistory:
    """Everything recorded about one address."""

    email: str
    contact_id: int | None
    name: str
    outlet: str | None
    erased: bool
    deliveries: list[HistoryDelivery]
    events: list[HistoryEvent]
    suppressions: list[HistorySuppression]
    suppression_changes: list[HistoryChange]


def contact_history(session: Session, email: str, *, limit: int = 500) -> ContactHistory | None:
    """Deliveries (newest first), their events and the contact's own events (in time
    order), current suppressions and suppression changes of the normalized ``email``;
    None when the address was never a contact and never suppressed."""
    hashed = email_hash(email)
    contact = session.scalar(select(Contact).where(Contact.email_hash == hashed))
    sups = [
        HistorySuppression(s.scope, s.reason, s.source, s.created_at)
        for s in session.scalars(select(Suppression).where(Suppression.email_hash == hashed).order_by(Suppression.id))
    ]
    changes = [
        HistoryChange(c.scope, c.action, c.reason, c.actor, c.at)
        for c in session.scalars(
            select(SuppressionLog).where(SuppressionLog.email_hash == hashed).order_by(SuppressionLog.id)
        )
    ]
    if contact is None:
        if not sups and not changes:
            return None
        return ContactHistory(email, None, "", None, False, [], [], sups, changes)
    deliveries = [
        HistoryDelivery(*row)
        for row in session.execute(
            select(
                Delivery.id,
                Delivery.release_id,
                Release.title,
                Segment.slug,
                Delivery.status,
                Delivery.attempts,
                Delivery.last_code,
                Delivery.last_reply,
                Delivery.reason,
                Delivery.sent_at,
                Delivery.updated_at,
            )
            .join(Release, Release.id == Delivery.release_id)
            .outerjoin(Segment, Segment.id == Delivery.segment_id)
            .where(Delivery.contact_id == contact.id)
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
    ]
    delivery_ids = [d.id for d in deliveries]
    where = DeliveryEvent.contact_id == contact.id
    if delivery_ids:
        where = or_(where, DeliveryEvent.delivery_id.in_(delivery_ids))
    events = [
        HistoryEvent(*row)
        for row in session.execute(
            select(
                DeliveryEvent.id,
                DeliveryEvent.delivery_id,
                Delivery.release_id,
                DeliveryEvent.kind,
                DeliveryEvent.code,
                DeliveryEvent.detail,
                DeliveryEvent.raw,
                DeliveryEvent.at,
            )
            .outerjoin(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .where(where)
            .order_by(DeliveryEvent.at, DeliveryEvent.id)
            .limit(limit * 4)
        )
    ]
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    return ContactHistory(
        contact.email or email,
        contact.id,
        name,
        contact.outlet,
        contact.erased_at is not None,
        deliveries,
        events,
        sups,
        changes,
    )
