"""Queries for bounce processing: find the delivery a notice is about, record what it
says, and apply the policy's writes (delivery status, soft-bounce score).

Callers own the transaction (:func:`mailer.store.db.transaction`); nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Select, case, select, update
from sqlalchemy.orm import Session

from mailer.domain.states import DeliveryStatus
from mailer.store.address_rows import rows_to
from mailer.store.contacts import insert_ignoring_conflicts
from mailer.store.tables import Client, Contact, Delivery, DeliveryEvent, InboundMail, Release

#: Deliveries whose message was (or may have been) handed to a mail server: the only
#: ones a notice can be about. Queued, suppressed and cancelled rows never left.
HANDED_OVER = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.FAILED,
        DeliveryStatus.BOUNCED,
    }
)

#: States a failure notice moves to ``bounced``. ``queued`` and ``sending`` belong to the
#: delivery engine (a worker may hold the row); ``suppressed`` and ``cancelled`` never
#: left; ``bounced`` keeps its first reason.
BOUNCEABLE = frozenset({DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.DEFERRED, DeliveryStatus.FAILED})

_MAX_REPLY = 2000


_TargetSelect = Select[int, int, str | None, str, str, str, str, int, str]


@dataclass(frozen=True)
class BounceTarget:
    """The delivery a notice was matched to, with what acting on it needs."""

    delivery_id: int
    contact_id: int
    email: str | None
    email_hash: str
    status: str
    message_id: str
    client_slug: str
    release_id: int = 0
    release_status: str = ""


def _targets() -> _TargetSelect:
    return (
        select(
            Delivery.id,
            Delivery.contact_id,
            Delivery.email,
            Delivery.email_hash,
            Delivery.status,
            Delivery.message_id,
            Client.slug,
            Release.id,
            Release.status,
        )
        .join(Release, Release.id == Delivery.release_id)
        .join(Client, Client.id == Release.client_id)
    )


def _first(session: Session, stmt: _TargetSelect) -> BounceTarget | None:
    row = session.execute(stmt.limit(1)).first()
    if row is None:
        return None
    delivery_id, contact_id, email, hashed, status, message_id, client_slug, release_id, release_status = row
    return BounceTarget(
        delivery_id, contact_id, email, hashed, status, message_id, client_slug, release_id, release_status
    )


def delivery_by_id(session: Session, delivery_id: int) -> BounceTarget | None:
    """The delivery with this id (from a verified VERP or mailto token), or None."""
    return _first(session, _targets().where(Delivery.id == delivery_id))


def delivery_by_message_id(session: Session, message_id: str) -> BounceTarget | None:
    """The delivery whose Message-ID is ``message_id`` (with or without ``<>``), or None."""
    bare = message_id.strip().strip("<>").strip()
    if not bare:
        return None
    return _first(session, _targets().where(Delivery.message_id.in_([f"<{bare}>", bare])))


def latest_delivery_to(session: Session, email_hash: str) -> BounceTarget | None:
    """The newest delivery to the address with this hash that was handed to a mail
    server, or None."""
    stmt = (
        _targets()
        .where(rows_to([email_hash]), Delivery.status.in_([s.value for s in HANDED_OVER]))
        .order_by(Delivery.id.desc())
    )
    return _first(session, stmt)


def record_delivery_event(
    session: Session,
    *,
    delivery_id: int,
    contact_id: int,
    kind: str,
    code: int | None,
    detail: str | None,
    dedupe_key: str,
    raw: str | None,
    at: datetime,
) -> bool:
    """Writes: one event on a delivery, unless an event with ``dedupe_key`` exists.

    Returns True when recorded, False for a duplicate. Concurrent callers with the same
    key are safe: the unique index lets exactly one insert through.
    """
    stmt = insert_ignoring_conflicts(session, DeliveryEvent).values(
        delivery_id=delivery_id,
        contact_id=contact_id,
        kind=kind,
        code=code,
        detail=detail,
        dedupe_key=dedupe_key,
        raw=raw,
        at=at,
    )
    # RETURNING, not rowcount: an ORM-enabled INSERT on PostgreSQL reports rowcount -1.
    inserted = session.execute(stmt.returning(DeliveryEvent.id)).scalar_one_or_none()
    return inserted is not None


def mark_delivery_bounced(
    session: Session, delivery_id: int, *, reason: str, code: int | None, reply: str | None, now: datetime
) -> bool:
    """Writes: move a delivery in a :data:`BOUNCEABLE` state to ``bounced`` with the
    reason and the remote reply. Returns False when the row was in another state."""
    stmt = (
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_([s.value for s in BOUNCEABLE]))
        .values(
            status=DeliveryStatus.BOUNCED.value,
            reason=reason[:40],
            last_code=code,
            last_reply=reply[:_MAX_REPLY] if reply else None,
            updated_at=now,
        )
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
    return bool(result.rowcount)


def requeue_refused(
    session: Session, delivery_id: int, *, reason: str, code: int | None, reply: str | None, now: datetime
) -> bool:
    """Writes: a delivery in a :data:`BOUNCEABLE` state that a receiving server refused
    because of *our sender* (a notice after the relay took it) goes back to the queue, as
    the engine does with a refusal it hears itself: never bounced, failed or suppressed;
    the reason and reply kept for staff; the give-up clock starts again (the refusal was
    not the recipient's), and the Message-ID is kept. Returns False when the row was in
    another state."""
    stmt = (
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_([s.value for s in BOUNCEABLE]))
        .values(
            status=DeliveryStatus.QUEUED.value,
            reason=reason[:40],
            last_code=code,
            last_reply=reply[:_MAX_REPLY] if reply else None,
            next_attempt_at=None,
            first_attempt_at=None,
            sent_at=None,
            in_data=False,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
    return bool(result.rowcount)


@dataclass(frozen=True)
class SoftScore:
    """A contact's soft-bounce state after one more soft bounce counted."""

    score: int
    warnings: int
    warned_at: datetime | None


def bump_soft_bounce_score(session: Session, contact_id: int, *, now: datetime, reset_days: int) -> SoftScore:
    """Writes: count one soft bounce for a contact and return its new state.

    At most one bounce counts per UTC calendar day (a burst of notices about one outage
    is one event); a score whose last bounce is older than ``reset_days`` is stale and
    starts again at 1, and so do its warnings. One UPDATE, so concurrent receivers
    cannot lose a count.
    """
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    stale = now - timedelta(days=reset_days)
    last = Contact.soft_bounce_last_at
    is_stale = (last.is_(None)) | (last < stale)
    stmt = (
        update(Contact)
        .where(Contact.id == contact_id)
        .values(
            soft_bounce_score=case(
                (is_stale, 1),
                (last >= day_start, Contact.soft_bounce_score),
                else_=Contact.soft_bounce_score + 1,
            ),
            soft_bounce_warnings=case((is_stale, 0), else_=Contact.soft_bounce_warnings),
            soft_bounce_warned_at=case((is_stale, None), else_=Contact.soft_bounce_warned_at),
            soft_bounce_last_at=case((last >= day_start, last), else_=now),
        )
        .returning(Contact.soft_bounce_score, Contact.soft_bounce_warnings, Contact.soft_bounce_warned_at)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).first()
    if row is None:
        return SoftScore(0, 0, None)
    return SoftScore(int(row[0] or 0), int(row[1] or 0), row[2])


def record_soft_warning(session: Session, contact_id: int, *, warnings: int, now: datetime) -> bool:
    """Writes: raise a contact's warning count from ``warnings`` to ``warnings + 1``.
    Returns False when another receiver raised it first (the warning is then theirs)."""
    stmt = (
        update(Contact)
        .where(Contact.id == contact_id, Contact.soft_bounce_warnings == warnings)
        .values(soft_bounce_warnings=warnings + 1, soft_bounce_warned_at=now)
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
    return bool(result.rowcount)


@dataclass(frozen=True)
class Inbound:
    """One message kept for staff (see :class:`mailer.store.tables.InboundMail`)."""

    id: int
    category: str
    envelope_to: str | None
    sender: str | None
    subject: str | None
    message_id: str | None
    delivery_id: int | None
    summary: str | None
    received_at: datetime


def keep_inbound(
    session: Session,
    *,
    category: str,
    envelope_to: str | None,
    sender: str | None,
    subject: str | None,
    message_id: str | None,
    delivery_id: int | None,
    summary: str | None,
    raw: str | None,
    dedupe_key: str,
    now: datetime,
) -> bool:
    """Writes: keep one message for staff unless one with ``dedupe_key`` is kept already.
    Returns True when kept now, False for a duplicate."""
    stmt = insert_ignoring_conflicts(session, InboundMail).values(
        category=category,
        envelope_to=envelope_to[:320] if envelope_to else None,
        sender=sender[:320] if sender else None,
        subject=subject,
        message_id=message_id[:255] if message_id else None,
        delivery_id=delivery_id,
        summary=summary,
        raw=raw,
        dedupe_key=dedupe_key,
        received_at=now,
    )
    return session.execute(stmt.returning(InboundMail.id)).scalar_one_or_none() is not None


def inbound(session: Session, *, category: str | None = None, limit: int = 50) -> list[Inbound]:
    """Kept messages, newest first, optionally of one category."""
    query = select(
        InboundMail.id,
        InboundMail.category,
        InboundMail.envelope_to,
        InboundMail.sender,
        InboundMail.subject,
        InboundMail.message_id,
        InboundMail.delivery_id,
        InboundMail.summary,
        InboundMail.received_at,
    ).order_by(InboundMail.id.desc())
    if category is not None:
        query = query.where(InboundMail.category == category)
    return [Inbound(*row) for row in session.execute(query.limit(limit))]


def inbound_raw(session: Session, inbound_id: int) -> str | None:
    """The raw text kept for one message, or None."""
    return session.scalar(select(InboundMail.raw).where(InboundMail.id == inbound_id))
