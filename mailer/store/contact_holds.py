"""Contacts held (not mailed) until a date: an out-of-office reply said they are away
(:mod:`mailer.inbound.act`). A held contact's delivery is recorded ``held`` with the
reason when a release is planned (:func:`hold_planned`) or a row is claimed
(:func:`hold_claimed`), so a hold recorded mid-send still counts; it is never sent.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session

from mailer.domain.states import DeliveryStatus
from mailer.store.deliveries import rowcount
from mailer.store.planned import ALL_CONTACTS, Step
from mailer.store.tables import ContactHold, Delivery, DeliveryEvent, Release, Stamp

#: the delivery event of a row recorded ``held``
HELD_EVENT = "held"


def held_now(contact_id: Any, now: datetime | BindParameter[Any]) -> ColumnElement[bool]:
    """The contact has a hold that is not lifted and lasts past ``now``: the one test the
    planner and the claim use."""
    return exists(
        select(ContactHold.id).where(
            ContactHold.contact_id == contact_id, ContactHold.lifted_at.is_(None), ContactHold.until > now
        )
    )


def add_hold(
    session: Session, *, contact_id: int, until: datetime, reason: str, reply_id: int | None, now: datetime
) -> int:
    """Writes: hold ``contact_id`` until ``until``; returns the hold's id."""
    hold = ContactHold(
        contact_id=contact_id, reply_id=reply_id, until=until, reason=reason[:200], lifted_at=None, created_at=now
    )
    session.add(hold)
    session.flush()
    return hold.id


def lift_holds_of_reply(session: Session, reply_id: int, *, now: datetime) -> list[int]:
    """Writes: lift the holds reply ``reply_id`` made; returns their contacts."""
    return list(
        session.scalars(
            update(ContactHold)
            .where(ContactHold.reply_id == reply_id, ContactHold.lifted_at.is_(None))
            .values(lifted_at=now)
            .returning(ContactHold.contact_id)
        )
    )


@dataclass(frozen=True)
class HeldContact:
    """A contact held at some moment: until when (their latest hold) and why."""

    contact_id: int
    until: datetime
    reason: str


def held_contacts(session: Session, at: datetime) -> list[HeldContact]:
    """Every contact held at ``at`` (a hold not lifted that lasts past it), with the
    latest end of their holds and that hold's reason; by contact id. For features that
    send outside releases (follow-ups) and must skip the same people."""
    latest = (
        select(ContactHold.contact_id, func.max(ContactHold.until).label("until"))
        .where(ContactHold.lifted_at.is_(None), ContactHold.until > at)
        .group_by(ContactHold.contact_id)
        .subquery()
    )
    rows = session.execute(
        select(ContactHold.contact_id, ContactHold.until, func.max(ContactHold.reason))
        .join(latest, and_(latest.c.contact_id == ContactHold.contact_id, latest.c.until == ContactHold.until))
        .where(ContactHold.lifted_at.is_(None))
        .group_by(ContactHold.contact_id, ContactHold.until)
        .order_by(ContactHold.contact_id)
    )
    return [HeldContact(int(contact_id), until, str(reason)) for contact_id, until, reason in rows]


def _hold_reason(contact_id: Any, now: datetime | BindParameter[Any]) -> Any:
    """The reason of the contact's latest hold in force at ``now`` (a scalar subquery)."""
    return (
        select(ContactHold.reason)
        .where(ContactHold.contact_id == contact_id, ContactHold.lifted_at.is_(None), ContactHold.until > now)
        .order_by(ContactHold.until.desc())
        .limit(1)
        .scalar_subquery()
    )


def _hold_rows(session: Session, *where: ColumnElement[bool], now: datetime) -> list[int]:
    """Writes: the rows ``where`` selects whose contact is held become ``held`` (reason
    and last reply from the hold), each with a ``held`` event; returns their ids."""
    held = list(session.scalars(_hold_statement(*where, now=now)))
    if held:
        _held_events(session, held, now)
    return held


def _held_events(session: Session, held: list[int], now: datetime) -> None:
    """A ``held`` event for each row just held, with its hold's reason."""
    reasons = {
        int(i): str(reply or "held")
        for i, reply in session.execute(select(Delivery.id, Delivery.last_reply).where(Delivery.id.in_(held)))
    }
    session.execute(
        insert(DeliveryEvent),
        [{"delivery_id": i, "kind": HELD_EVENT, "detail": reasons.get(i) or "held", "at": now} for i in held],
    )


def hold_planned(session: Session, release_id: int, *, now: datetime, step: Step = ALL_CONTACTS) -> int:
    """Writes: the queued rows of a release just planned (of ``step``'s contacts) whose
    contact is held become ``held``; returns how many. Found from the holds in force (by
    ``uq_deliveries_release_contact``), not by testing each row of the step: that was
    ~7% of a planned row's cost (issue 20)."""
    held = select(ContactHold.contact_id).where(
        ContactHold.lifted_at.is_(None), ContactHold.until > now, step.covers(ContactHold.contact_id)
    )
    ids = list(
        session.scalars(select(Delivery.id).where(Delivery.release_id == release_id, Delivery.contact_id.in_(held)))
    )
    if not ids:
        return 0
    return len(_hold_rows(session, Delivery.id.in_(ids), Delivery.status == DeliveryStatus.QUEUED.value, now=now))


def hold_claimed(session: Session, delivery_ids: Sequence[int], *, now: datetime) -> list[int]:
    """Writes: among rows just claimed (``sending``), those whose contact is held become
    ``held`` (not sent); returns their ids."""
    if not delivery_ids:
        return []
    # Called for every claimed batch: a Core statement built once, the ids as one
    # expanding parameter (not one per id), on the session's connection.
    held: list[int] = list(
        session.connection().execute(_HOLD_CLAIMED, {"ids": list(delivery_ids), "b_now": now}).scalars()
    )
    if held:
        _held_events(session, held, now)
    return held


def _hold_statement(*where: ColumnElement[bool], now: datetime | BindParameter[Any]) -> Any:
    """The UPDATE of :func:`_hold_rows`: the rows ``where`` selects whose contact is held
    at ``now`` become ``held``, returning their ids."""
    return (
        update(Delivery)
        .where(*where, held_now(Delivery.contact_id, now))
        .values(
            status=DeliveryStatus.HELD.value,
            reason="out_of_office",
            last_reply=_hold_reason(Delivery.contact_id, now),
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=None,
            updated_at=now,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )


_HOLD_CLAIMED = _hold_statement(
    Delivery.id.in_(bindparam("ids", expanding=True)),
    Delivery.status == DeliveryStatus.SENDING.value,
    now=bindparam("b_now", type_=Stamp),
)


def requeue_held(session: Session, contact_ids: Sequence[int], *, now: datetime) -> int:
    """Writes: a lifted hold's ``held`` rows of releases still sending go back to the
    queue (same Message-ID); finished releases keep them. Returns how many."""
    if not contact_ids:
        return 0
    sending = select(Release.id).where(Release.status.in_(["planning", "sending", "paused"]))
    return rowcount(
        session.execute(
            update(Delivery)
            .where(
                Delivery.contact_id.in_(list(contact_ids)),
                Delivery.status == DeliveryStatus.HELD.value,
                Delivery.release_id.in_(sending),
            )
            .values(status=DeliveryStatus.QUEUED.value, reason=None, last_reply=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
