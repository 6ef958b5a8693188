"""Queries that remove a person's data (right to erasure) and keep only the address hash.

Callers own the transaction (:func:`mailer.db.transaction`); nothing here commits. Every
function here writes. :func:`mailer.suppressions.erase_contact` runs them in order.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mailer.domain import DeliveryStatus
from mailer.tables import (
    Contact,
    ContactBeat,
    ContactTag,
    Delivery,
    DeliveryEvent,
    InboundMail,
    ListMember,
    Suppression,
)

#: Stands in for the address wherever it appeared inside free text (SMTP replies).
REDACTED = "[erased]"


def find_contact_by_hash(session: Session, hashed: str) -> Contact | None:
    """The contact whose address has this hash (live contacts only carry a real hash)."""
    return session.scalar(select(Contact).where(Contact.email_hash == hashed))


def erase_contact_row(session: Session, contact_id: int, *, now: datetime) -> None:
    """Writes: clear every personal field of the contact, its beats, tags and list
    memberships, and set ``erased_at``.

    The row keeps its id (deliveries and events point at it) but gives up its address
    hash: ``email_hash`` becomes ``erased-<id>``, which can never equal a SHA-256 hex. The
    real hash lives on in the contact's ``erased`` suppression, so a later import of the
    same address creates a new, still-suppressed contact instead of colliding with the
    unique hash of this row.
    """
    session.execute(
        update(Contact)
        .where(Contact.id == contact_id)
        .values(
            email=None,
            email_hash=f"erased-{contact_id}",
            first_name=None,
            last_name=None,
            outlet=None,
            outlet_type=None,
            region=None,
            country=None,
            language=None,
            timezone=None,
            attributes={},
            import_batch=None,
            import_line=None,
            erased_at=now,
            updated_at=now,
        )
    )
    for table in (ContactBeat, ContactTag, ListMember):
        session.execute(delete(table).where(table.contact_id == contact_id))


def _redact(text: str | None, email: str | None) -> str | None:
    if text is None or not email:
        return text
    return re.sub(re.escape(email), REDACTED, text, flags=re.IGNORECASE)


def forget_delivery_addresses(
    session: Session, *, contact_id: int | None, hashed: str, email: str | None, now: datetime
) -> list[int]:
    """Writes: the deliveries of this contact (or to this hash) lose their address and
    have it cut out of the last SMTP reply; those not yet claimed (queued, deferred)
    become ``suppressed`` with reason ``erased``. Returns the delivery ids touched."""
    match = Delivery.email_hash == hashed
    if contact_id is not None:
        match = or_(match, Delivery.contact_id == contact_id)
    rows = session.execute(select(Delivery.id, Delivery.last_reply).where(match)).all()
    ids = [r[0] for r in rows]
    if not ids:
        return ids
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status.in_((DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value)))
        .values(status=DeliveryStatus.SUPPRESSED.value, reason="erased", updated_at=now)
    )
    session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(email=None))
    replies = [{"id": r[0], "last_reply": _redact(r[1], email)} for r in rows if r[1] is not None]
    if replies:
        session.execute(update(Delivery), replies)
    return ids


def forget_event_details(
    session: Session, *, delivery_ids: list[int], contact_id: int | None, email: str | None
) -> int:
    """Writes: events of these deliveries (or this contact) lose their raw message (a
    bounce carries the address and often the whole original) and have the address cut
    out of their detail; notices kept for staff review about these deliveries are
    deleted. Returns how many events changed."""
    if delivery_ids:
        session.execute(delete(InboundMail).where(InboundMail.delivery_id.in_(delivery_ids)))
    conditions: list[ColumnElement[bool]] = []
    if delivery_ids:
        conditions.append(DeliveryEvent.delivery_id.in_(delivery_ids))
    if contact_id is not None:
        conditions.append(DeliveryEvent.contact_id == contact_id)
    if not conditions:
        return 0
    rows = session.execute(select(DeliveryEvent.id, DeliveryEvent.detail).where(or_(*conditions))).all()
    if rows:
        session.execute(
            update(DeliveryEvent),
            [{"id": r[0], "detail": _redact(r[1], email), "raw": None} for r in rows],
        )
    return len(rows)


def forget_suppression_addresses(session: Session, hashed: str) -> int:
    """Writes: suppressions of this hash keep the hash and lose the address."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Suppression).where(Suppression.email_hash == hashed).values(email=None)
    )
    return int(result.rowcount)
