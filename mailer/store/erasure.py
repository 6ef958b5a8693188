"""Queries that remove a person's data (right to erasure) and keep only the address hash.

Callers own the transaction (:func:`mailer.store.db.transaction`); nothing here commits. Every
function here writes. :func:`mailer.audience.erasure.erase_contact` runs them in order.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mailer.domain.addresses import ascii_domain
from mailer.domain.errors import InputError
from mailer.domain.states import DeliveryStatus
from mailer.store.address_rows import ERASED_PREFIX, remember_address, rows_to
from mailer.store.tables import (
    Contact,
    ContactBeat,
    ContactChange,
    ContactNote,
    ContactTag,
    ContactTerm,
    Delivery,
    DeliveryEvent,
    InboundMail,
    ListMember,
    Suppression,
    SuppressionLog,
)

#: Stands in for the address wherever it appeared inside free text (SMTP replies).
REDACTED = "[erased]"


def find_contact_by_hash(session: Session, hashed: str) -> Contact | None:
    """The contact whose address has this hash (live contacts only carry a real hash)."""
    return session.scalar(select(Contact).where(Contact.email_hash == hashed))


def erase_contact_row(session: Session, contact_id: int, *, now: datetime) -> None:
    """Writes: clear every personal field of the contact, its beats, tags, list
    memberships, notes and edit log, and set ``erased_at``.

    The row keeps its id (deliveries and events point at it) but gives up its address
    hash: ``email_hash`` becomes ``erased-<id>``, which can never equal a SHA-256 hex. The
    real hash lives on in the contact's ``erased`` suppression, so a later import of the
    same address creates a new, still-suppressed contact instead of colliding with the
    unique hash of this row. The real hash is also kept as the contact's former address:
    its deliveries carry it, and are found by it (:mod:`mailer.store.address_rows`).
    """
    remember_address(session, contact_id)
    session.execute(
        update(Contact)
        .where(Contact.id == contact_id)
        .values(
            email=None,
            email_hash=f"{ERASED_PREFIX}{contact_id}",
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
            sort_name="",
            sort_outlet="",
        )
    )
    for table in (ContactBeat, ContactTag, ListMember, ContactNote, ContactChange, ContactTerm):
        session.execute(delete(table).where(table.contact_id == contact_id))


def _forms(email: str) -> list[str]:
    """The address as stored and as SMTP carried it (IDNA domain): a relay quotes the latter."""
    forms = [email]
    try:
        ascii_form = ascii_domain(email)
    except InputError:
        return forms
    return forms if ascii_form == email else [*forms, ascii_form]


def _redact(text: str | None, *emails: str | None) -> str | None:
    if text is None:
        return text
    for email in emails:
        for form in _forms(email) if email else ():
            text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    return text


def forget_delivery_addresses(
    session: Session, *, contact_id: int | None, hashed: str, email: str | None, now: datetime
) -> list[int]:
    """Writes: the deliveries of this contact (or to this hash) lose their address and
    have it cut out of the last SMTP reply; those not yet claimed (queued, deferred)
    become ``suppressed`` with reason ``erased``. Returns the delivery ids touched."""
    # two index paths, not one OR (PostgreSQL cannot combine an IN-subquery's index path
    # with another under OR: it read the whole table)
    found: dict[int, str | None] = {}
    queries = [select(Delivery.id, Delivery.last_reply).where(rows_to([hashed]))]
    if contact_id is not None:
        queries.append(select(Delivery.id, Delivery.last_reply).where(Delivery.contact_id == contact_id))
    for query in queries:
        found.update((delivery_id, reply) for delivery_id, reply in session.execute(query))
    rows = sorted(found.items())
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


def forget_suppression_addresses(session: Session, hashed: str, *, email: str | None = None) -> int:
    """Writes: suppressions of this hash keep the hash and lose the address, also where it
    was quoted in their ``source`` ("SMTP 550 5.1.1 <hb@example.com> ...", issue 12), and
    it is cut out of the reasons in their change log. ``email`` is the address to cut out
    besides the one each row stored. Returns how many suppressions changed."""
    rows = session.execute(
        select(Suppression.id, Suppression.email, Suppression.source).where(Suppression.email_hash == hashed)
    ).all()
    if rows:
        session.execute(
            update(Suppression),
            [{"id": r[0], "email": None, "source": _redact(r[2], r[1], email) or ""} for r in rows],
        )
    known = {r[1] for r in rows if r[1]} | ({email} if email else set())
    if known:
        logs = session.execute(
            select(SuppressionLog.id, SuppressionLog.reason).where(SuppressionLog.email_hash == hashed)
        ).all()
        changed = [{"id": r[0], "reason": _redact(r[1], *known)} for r in logs if _redact(r[1], *known) != r[1]]
        if changed:
            session.execute(update(SuppressionLog), changed)
    return len(rows)
