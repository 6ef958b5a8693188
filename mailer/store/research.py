"""The research queue: what replies taught that a person should confirm — a new outlet
or address of a journalist who moved, a topic suppression for one who says "not my
beat" — and the contact a confirmed new address becomes.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.domain.replies import ResearchKind, ResearchStatus
from mailer.domain.states import email_hash
from mailer.store.deliveries import rowcount
from mailer.store.tables import Contact, ContactBeat, ContactTag, ListMember, ResearchItem


def add_item(
    session: Session,
    *,
    kind: ResearchKind,
    reply_id: int | None,
    contact_id: int | None,
    old_email: str | None,
    now: datetime,
    new_email: str | None = None,
    new_outlet: str | None = None,
    topics: str | None = None,
    note: str | None = None,
) -> int:
    """Writes: one open item; returns its id."""
    item = ResearchItem(
        reply_id=reply_id,
        contact_id=contact_id,
        kind=kind.value,
        status=ResearchStatus.OPEN.value,
        old_email=old_email,
        new_email=new_email,
        new_outlet=(new_outlet or None) and new_outlet[:200],
        topics=(topics or None) and topics[:500],
        note=note,
        created_at=now,
    )
    session.add(item)
    session.flush()
    return item.id


def get_item(session: Session, item_id: int) -> ResearchItem | None:
    return session.get(ResearchItem, item_id)


def resolve_item(session: Session, item_id: int, status: ResearchStatus, *, actor: str, now: datetime) -> bool:
    """Writes: an open item becomes ``status``; False when it was not open."""
    return (
        rowcount(
            session.execute(
                update(ResearchItem)
                .where(ResearchItem.id == item_id, ResearchItem.status == ResearchStatus.OPEN.value)
                .values(status=status.value, resolved_at=now, resolved_by=actor)
            )
        )
        == 1
    )


def dismiss_items_of_reply(session: Session, reply_id: int, *, actor: str, now: datetime) -> int:
    """Writes: the open items reply ``reply_id`` made are dismissed (its action was undone)."""
    return rowcount(
        session.execute(
            update(ResearchItem)
            .where(ResearchItem.reply_id == reply_id, ResearchItem.status == ResearchStatus.OPEN.value)
            .values(status=ResearchStatus.DISMISSED.value, resolved_at=now, resolved_by=actor)
        )
    )


@dataclass(frozen=True)
class ResearchRow:
    """One item as the research page and the command line show it."""

    id: int
    kind: str
    status: str
    reply_id: int | None
    contact_id: int | None
    old_email: str | None
    new_email: str | None
    new_outlet: str | None
    topics: str | None
    note: str | None
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None


def list_items(session: Session, *, status: str | None = None, limit: int = 500) -> list[ResearchRow]:
    """Items, newest first; one status when given."""
    stmt = select(ResearchItem).order_by(ResearchItem.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(ResearchItem.status == status)
    return [
        ResearchRow(
            r.id,
            r.kind,
            r.status,
            r.reply_id,
            r.contact_id,
            r.old_email,
            r.new_email,
            r.new_outlet,
            r.topics,
            r.note,
            r.created_at,
            r.resolved_at,
            r.resolved_by,
        )
        for r in session.scalars(stmt)
    ]


def contact_id_of(session: Session, email: str) -> int | None:
    """The contact with this (normalized) address, if any."""
    return session.scalar(select(Contact.id).where(Contact.email_hash == email_hash(email)))


def copy_contact(session: Session, source_id: int, *, email: str, outlet: str | None, now: datetime) -> int:
    """Writes: a new contact at ``email`` (normalized) with the name, outlet type, region,
    language, time zone, attributes, beats, tags and lists of contact ``source_id``, and
    ``outlet`` when given; returns its id."""
    source = session.get(Contact, source_id)
    if source is None:
        raise LookupError(source_id)
    contact = Contact(
        email=email,
        email_hash=email_hash(email),
        first_name=source.first_name,
        last_name=source.last_name,
        outlet=outlet or source.outlet,
        outlet_type=source.outlet_type,
        region=source.region,
        country=source.country,
        language=source.language,
        timezone=source.timezone,
        attributes=dict(source.attributes or {}),
        created_at=now,
        updated_at=now,
    )
    session.add(contact)
    session.flush()
    for beat in session.scalars(select(ContactBeat.beat).where(ContactBeat.contact_id == source_id)):
        session.add(ContactBeat(contact_id=contact.id, beat=beat))
    for tag in session.scalars(select(ContactTag.tag).where(ContactTag.contact_id == source_id)):
        session.add(ContactTag(contact_id=contact.id, tag=tag))
    for list_id in session.scalars(select(ListMember.list_id).where(ListMember.contact_id == source_id)):
        session.add(ListMember(list_id=list_id, contact_id=contact.id, added_at=now))
    session.flush()
    return contact.id


def contact_beats(session: Session, contact_id: int) -> list[str]:
    """The beats of a contact, sorted."""
    return sorted(session.scalars(select(ContactBeat.beat).where(ContactBeat.contact_id == contact_id)))


def contact_email(session: Session, contact_id: int | None) -> str | None:
    """The address of a contact (None when unknown or erased)."""
    if contact_id is None:
        return None
    return session.scalar(select(Contact.email).where(Contact.id == contact_id))
