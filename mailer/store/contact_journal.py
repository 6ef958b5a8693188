"""A contact's journal: staff notes and the log of field changes made by people
(contact edit). Both are personal data and go with an erasure (:mod:`mailer.store.erasure`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from mailer.store.tables import Contact, ContactChange, ContactNote


@dataclass(frozen=True)
class Note:
    id: int
    author: str
    body: str
    at: datetime


@dataclass(frozen=True)
class Change:
    actor: str
    field: str
    old_value: str | None
    new_value: str | None
    at: datetime


def add_note(session: Session, contact_id: int, *, author: str, body: str, now: datetime) -> int:
    """Writes: one note on the contact; returns its id."""
    row = ContactNote(contact_id=contact_id, author=author[:320], body=body, at=now)
    session.add(row)
    session.flush()
    return row.id


def notes(session: Session, contact_id: int, *, limit: int = 200) -> list[Note]:
    """The contact's notes, newest first."""
    rows = session.execute(
        select(ContactNote.id, ContactNote.author, ContactNote.body, ContactNote.at)
        .where(ContactNote.contact_id == contact_id)
        .order_by(ContactNote.id.desc())
        .limit(limit)
    )
    return [Note(*r) for r in rows]


def record_changes(session: Session, contact_id: int, changes: Sequence[Change]) -> None:
    """Writes: the log rows of one edit."""
    if changes:
        session.execute(
            insert(ContactChange),
            [
                {
                    "contact_id": contact_id,
                    "actor": c.actor[:320],
                    "field": c.field[:80],
                    "old_value": c.old_value,
                    "new_value": c.new_value,
                    "at": c.at,
                }
                for c in changes
            ],
        )


def changes(session: Session, contact_id: int, *, limit: int = 200) -> list[Change]:
    """The contact's edit log, newest first."""
    rows = session.execute(
        select(
            ContactChange.actor, ContactChange.field, ContactChange.old_value, ContactChange.new_value, ContactChange.at
        )
        .where(ContactChange.contact_id == contact_id)
        .order_by(ContactChange.id.desc())
        .limit(limit)
    )
    return [Change(*r) for r in rows]


def update_contact_fields(session: Session, contact_id: int, values: dict[str, Any]) -> None:
    """Writes: the given columns of one contact (already validated)."""
    session.execute(update(Contact).where(Contact.id == contact_id).values(**values))
