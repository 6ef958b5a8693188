"""An address's delivery rows, found through its contacts.

``deliveries.email_hash`` has no index: planning would insert one random key per row into
it, and on SQLite every planning step's commit then rewrote most of that index (issue 20,
migration 0018_deliveries_lookup). Every row carries its contact's hash as it was when the
row was planned, and a contact's hash changes only when the contact is erased (it becomes
``erased-<id>``, :func:`mailer.store.erasure.erase_contact_row`), which first keeps the old
one as a :class:`~mailer.store.tables.FormerAddress`. So the rows to an address are the
rows of the contacts that have its hash now or had it before (``contacts.email_hash``
unique, ``former_addresses``' primary key, then ``ix_deliveries_contact_status``) whose
own hash is the address's.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, CompoundSelect, and_, select, union_all
from sqlalchemy.orm import Session

from mailer.store.contacts import insert_ignoring_conflicts
from mailer.store.tables import Contact, Delivery, FormerAddress

#: the prefix of an erased contact's hash (never a SHA-256 hex digest)
ERASED_PREFIX = "erased-"


def contacts_with(hashes: Collection[str]) -> CompoundSelect[int]:
    """The ids of the contacts whose address hash is, or was, one of ``hashes`` (a SELECT)."""
    listed = sorted(set(hashes))
    return union_all(
        select(Contact.id).where(Contact.email_hash.in_(listed)),
        select(FormerAddress.contact_id).where(FormerAddress.email_hash.in_(listed)),
    )


def rows_to(hashes: Collection[str]) -> ColumnElement[bool]:
    """A WHERE clause: delivery rows planned to an address whose hash is one of ``hashes``."""
    listed = sorted(set(hashes))
    return and_(Delivery.contact_id.in_(contacts_with(listed)), Delivery.email_hash.in_(listed))


def remember_address(session: Session, contact_id: int) -> None:
    """Writes: the contact's current address hash becomes one of its former addresses
    (run before its hash is replaced; an erased contact's ``erased-<id>`` is not kept)."""
    current = select(Contact.email_hash, Contact.id).where(
        Contact.id == contact_id, Contact.email_hash.not_like(f"{ERASED_PREFIX}%")
    )
    session.execute(
        insert_ignoring_conflicts(session, FormerAddress).from_select(["email_hash", "contact_id"], current)
    )
