"""What a contact did with what we sent: one small function per signal, each a SQL
condition or a SELECT of contact ids, with bound parameters only. The segment rule
language's history fields (:mod:`mailer.store.segments`: ``received:ID``, ``bounced``,
``complained``, ``replied:ID``, ``downloaded:ID``) and the follow-up's audience
(:func:`mailer.store.deliveries.plan_thread`) are built from them.

Each reads the ledger through an index: ``uq_deliveries_release_contact`` (release,
contact) for one release, ``ix_deliveries_contact_status`` (contact, status) for any,
``ix_delivery_events_delivery_id`` for the events of a delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.sql import Select

from mailer.domain.replies import PERSONAL_KINDS
from mailer.domain.states import DeliveryStatus
from mailer.store.assets import DOWNLOADED
from mailer.store.ledger.report import HARD_REASONS
from mailer.store.tables import Contact, ContactHold, Delivery, DeliveryEvent, Reply

__all__ = [
    "bounced",
    "complained",
    "downloaded_contact_ids",
    "held_contact_ids",
    "received",
    "replied_contact_ids",
]


def _of(release_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    return [] if release_ids is None else [Delivery.release_id.in_(list(release_ids))]


def received(release_ids: Sequence[int]) -> ColumnElement[bool]:
    """The contact was sent one of these releases (its delivery is ``sent``: the receiving
    server took it and nothing bounced since)."""
    return exists(
        select(Delivery.id).where(
            Delivery.contact_id == Contact.id,
            Delivery.status == DeliveryStatus.SENT.value,
            *_of(release_ids),
        )
    )


def bounced(release_ids: Sequence[int] | None = None) -> ColumnElement[bool]:
    """A message to the contact (of these releases; None: of any) bounced: a bounce
    notice (``bounced``), or a permanent refusal that means the address is dead."""
    return exists(
        select(Delivery.id).where(
            Delivery.contact_id == Contact.id,
            or_(
                Delivery.status == DeliveryStatus.BOUNCED.value,
                and_(Delivery.status == DeliveryStatus.FAILED.value, Delivery.reason.in_(HARD_REASONS)),
            ),
            *_of(release_ids),
        )
    )


def complained(release_ids: Sequence[int] | None = None) -> ColumnElement[bool]:
    """The contact complained (an ARF report or feedback loop) about a message (of these
    releases; None: of any)."""
    return exists(
        select(DeliveryEvent.id)
        .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(Delivery.contact_id == Contact.id, DeliveryEvent.kind == "complained", *_of(release_ids))
    )


def replied_contact_ids(release_ids: Sequence[int]) -> Select[Any]:
    """The contacts who replied in person to one of these releases (a reply a person wrote:
    :data:`mailer.domain.replies.PERSONAL_KINDS`, not an out-of-office or other automatic
    mail), unless staff undid its reading."""
    return select(Reply.contact_id).where(
        Reply.release_id.in_(list(release_ids)),
        Reply.contact_id.is_not(None),
        Reply.kind.in_([k.value for k in PERSONAL_KINDS]),
        Reply.undone_at.is_(None),
    )


def downloaded_contact_ids(release_ids: Sequence[int]) -> Select[Any]:
    """The contacts who downloaded from the press kit of one of these releases (a
    ``downloaded`` event of their delivery, :mod:`mailer.store.assets`)."""
    return (
        select(Delivery.contact_id)
        .join(DeliveryEvent, DeliveryEvent.delivery_id == Delivery.id)
        .where(Delivery.release_id.in_(list(release_ids)), DeliveryEvent.kind == DOWNLOADED)
    )


def held_contact_ids(now: datetime) -> Select[Any]:
    """The contacts held at ``now`` (an out-of-office reply said they are away): a hold not
    lifted that lasts past ``now`` (:mod:`mailer.store.contact_holds`)."""
    return select(ContactHold.contact_id).where(ContactHold.lifted_at.is_(None), ContactHold.until > now)
