"""Writes: the sort keys and search words kept per contact (``contacts.sort_name``,
``contacts.sort_outlet``, ``contact_terms``), after every import batch, edit and erasure:
a search word is a row (term, contact_id), so a prefix is a range scan of the primary key,
never a ``LIKE '%...%'`` over every row."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from mailer.domain.search_terms import contact_terms, name_key, outlet_key
from mailer.store.bulk import append_rows
from mailer.store.tables import Contact, ContactBeat, ContactTag, ContactTerm

# Core tables for the bulk writes (one executemany each, not the ORM's per-row bulk path).
_TERMS = typing.cast(Table, ContactTerm.__table__)
_CONTACTS = typing.cast(Table, Contact.__table__)


def reindex_contacts(session: Session, ids: Iterable[int]) -> None:
    """Writes: the sort keys and search words of these contacts, from what is stored now
    (called after every import batch, edit and erasure)."""
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 1000):
        _reindex_chunk(session, wanted[start : start + 1000])


def _reindex_chunk(session: Session, ids: list[int]) -> None:
    """Writes only what changed: the words a contact lost are deleted, new ones appended,
    sort keys updated where they differ (a re-import of an unchanged file writes none)."""
    rows = session.execute(
        select(
            Contact.id,
            Contact.email,
            Contact.first_name,
            Contact.last_name,
            Contact.outlet,
            Contact.sort_name,
            Contact.sort_outlet,
        ).where(Contact.id.in_(ids))
    ).all()
    beats: dict[int, list[str]] = {}
    for cid, beat in session.execute(
        select(ContactBeat.contact_id, ContactBeat.beat).where(ContactBeat.contact_id.in_(ids))
    ):
        beats.setdefault(cid, []).append(beat)
    tags: dict[int, list[str]] = {}
    for cid, tag in session.execute(
        select(ContactTag.contact_id, ContactTag.tag).where(ContactTag.contact_id.in_(ids))
    ):
        tags.setdefault(cid, []).append(tag)
    stored: set[tuple[str, int]] = set()
    for cid, term in session.execute(
        select(ContactTerm.contact_id, ContactTerm.term).where(ContactTerm.contact_id.in_(ids))
    ):
        stored.add((term, cid))
    wanted: set[tuple[str, int]] = set()
    keys: list[dict[str, Any]] = []
    for cid, email, first, last, outlet, sort_name, sort_outlet in rows:
        words = contact_terms(
            email=email,
            first_name=first,
            last_name=last,
            outlet=outlet,
            beats=beats.get(cid, ()),
            tags=tags.get(cid, ()),
        )
        wanted.update((w, cid) for w in words)
        name, outlet_sort = name_key(first, last) if email else "", outlet_key(outlet)
        if (name, outlet_sort) != (sort_name, sort_outlet):
            keys.append({"b_id": cid, "b_name": name, "b_outlet": outlet_sort})
    gone = sorted(stored - wanted)
    if gone:
        drop = delete(_TERMS).where(_TERMS.c.term == bindparam("b_term"), _TERMS.c.contact_id == bindparam("b_id"))
        session.execute(drop, [{"b_term": t, "b_id": c} for t, c in gone])
    append_rows(session, _TERMS, ("term", "contact_id"), sorted(wanted - stored))
    if keys:
        stmt = (
            update(_CONTACTS)
            .where(_CONTACTS.c.id == bindparam("b_id"))
            .values(sort_name=bindparam("b_name"), sort_outlet=bindparam("b_outlet"))
        )
        session.execute(stmt, keys)


def add_terms(session: Session, words: Sequence[tuple[str, int]]) -> None:
    """Writes: the search words of contacts that have none yet (just inserted, their sort
    keys written with them), as (word, contact id) in that order (the primary key's: each
    index page is visited once) — what :func:`reindex_contacts` would find, without
    reading the rows back."""
    append_rows(session, _TERMS, ("term", "contact_id"), words)


def reindex_all(session: Session, *, page: int = 5000) -> int:
    """Writes: :func:`reindex_contacts` over every contact, in pages by id; returns how many."""
    last, total = 0, 0
    while True:
        ids = list(session.scalars(select(Contact.id).where(Contact.id > last).order_by(Contact.id).limit(page)))
        if not ids:
            return total
        reindex_contacts(session, ids)
        total += len(ids)
        last = ids[-1]
