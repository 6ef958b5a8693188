"""Queries about contacts, lists and segments.

Callers own the transaction (:func:`mailer.store.db.transaction`); nothing here commits.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, LargeBinary, Table, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from mailer.domain.addresses import needs_smtputf8
from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import GLOBAL_SCOPE
from mailer.store.bulk import append_rows
from mailer.store.segments import compile_rule
from mailer.store.suppression_match import email_domain, suppressed_in
from mailer.store.tables import Contact, ContactBeat, ContactTag, ListMember, MailingList, Segment, Suppression

# The tables themselves: the bulk writes below are Core executemany statements, not the
# ORM's bulk path (which walks every row in Python and, for inserts, asks for RETURNING).
CONTACTS = typing.cast(Table, Contact.__table__)
_MEMBERS = typing.cast(Table, ListMember.__table__)
_LABELS = {
    ContactBeat: (typing.cast(Table, ContactBeat.__table__), "beat"),
    ContactTag: (typing.cast(Table, ContactTag.__table__), "tag"),
}


def insert_ignoring_conflicts(session: Session, table: Any) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


# --- lists -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListSummary:
    slug: str
    name: str
    members: int
    suppressed: int
    created_at: datetime


def get_list(session: Session, slug: str) -> MailingList:
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        raise NotFoundError(f"no list {slug!r} (see `mailer lists`)")
    return found


def ensure_list(session: Session, slug: str, *, name: str | None, now: datetime) -> MailingList:
    """Writes: the list ``slug``, created when missing."""
    found = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        found = MailingList(slug=slug, name=name or slug, created_at=now)
        session.add(found)
        session.flush()
    return found


def create_list(session: Session, slug: str, *, name: str | None, now: datetime) -> MailingList:
    """Writes: a new list; raises InputError when the slug is taken."""
    if session.scalar(select(MailingList.id).where(MailingList.slug == slug)) is not None:
        raise InputError(f"list {slug!r} already exists")
    return ensure_list(session, slug, name=name, now=now)


def list_summaries(session: Session, slug: str | None = None) -> list[ListSummary]:
    """Every list (or one) with member counts and how many members are suppressed."""
    members = (
        select(func.count())
        .select_from(ListMember)
        .join(Contact, Contact.id == ListMember.contact_id)
        .where(ListMember.list_id == MailingList.id, Contact.email.is_not(None))
        .scalar_subquery()
    )
    suppressed = (
        select(func.count())
        .select_from(ListMember)
        .join(Contact, Contact.id == ListMember.contact_id)
        .where(
            ListMember.list_id == MailingList.id,
            suppressed_in(Contact.email_hash, email_domain(session, Contact.email), [GLOBAL_SCOPE]),
        )
        .scalar_subquery()
    )
    query = select(MailingList, members, suppressed).order_by(MailingList.slug)
    if slug is not None:
        query = query.where(MailingList.slug == slug)
    rows = session.execute(query).all()
    if slug is not None and not rows:
        raise NotFoundError(f"no list {slug!r} (see `mailer lists`)")
    return [ListSummary(r[0].slug, r[0].name, r[1], r[2], r[0].created_at) for r in rows]


# --- contacts --------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactKey:
    id: int
    email: str
    import_batch: str | None
    import_line: int | None


def find_contacts_by_email(session: Session, emails: Sequence[str]) -> list[ContactKey]:
    """Identity and last import of the contacts with these addresses."""
    if not emails:
        return []
    return [
        ContactKey(r[0], r[1] or "", r[2], r[3])
        for r in session.execute(
            select(Contact.id, Contact.email, Contact.import_batch, Contact.import_line).where(
                Contact.email.in_(emails)
            )
        )
    ]


def contact_ids(session: Session, emails: Sequence[str]) -> dict[str, int]:
    """The ids of the contacts with these (stored) addresses, by address."""
    if not emails:
        return {}
    rows = session.execute(select(Contact.id, Contact.email).where(Contact.email.in_(emails)))
    return {email: cid for cid, email in rows if email is not None}


def insert_contacts(
    session: Session, rows: list[dict[str, Any]], *, same: dict[str, Any] | None = None
) -> dict[str, int]:
    """Writes: new contacts, appended in bulk (a column missing from a dict is NULL; one
    missing from all gets its scalar default; ``same`` gives columns with one value for
    every row); returns their ids by email. On SQLite, where this transaction holds the
    database's only write lock, the ids are given (after the highest one); on PostgreSQL
    the sequence gives them and they are read back in one query (no RETURNING per row)."""
    if not rows:
        return {}
    same = same or {}
    given = [c for c in dict.fromkeys(key for row in rows for key in row) if c not in same]  # short rows lack a few
    defaults = {
        c.name: c.default.arg
        for c in CONTACTS.c
        if c.name not in given and c.name not in same and isinstance(c.default, ScalarElementColumnDefault)
    }
    constants = {**same, **defaults}
    if session.get_bind().dialect.name != "sqlite":
        append_rows(session, CONTACTS, given, (tuple(map(row.get, given)) for row in rows), same=constants)
        return contact_ids(session, [row["email"] for row in rows])
    base = session.scalar(select(func.max(Contact.id))) or 0
    ids = {row["email"]: base + n for n, row in enumerate(rows, start=1)}
    if len(ids) != len(rows):
        raise ValueError("insert_contacts: the same address twice")
    values = ((base + n, *map(row.get, given)) for n, row in enumerate(rows, start=1))
    append_rows(session, CONTACTS, ["id", *given], values, same=constants)
    return ids


def update_contacts(session: Session, rows: list[dict[str, Any]]) -> None:
    """Writes: existing contacts by id (each dict carries ``id`` and the columns to set),
    one executemany per set of columns."""
    by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_keys.setdefault(tuple(sorted(row)), []).append(row)
    for keys, group in by_keys.items():
        columns = [k for k in keys if k != "id"]
        stmt = (
            update(CONTACTS)
            .where(CONTACTS.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}", type_=CONTACTS.c[c].type) for c in columns})
        )
        session.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in group])


def add_contact_labels(
    session: Session, table: type[ContactBeat] | type[ContactTag], labels: Iterable[tuple[int, str]]
) -> None:
    """Writes: beats (or tags) of contacts that have none yet (new ones), as (id, label)."""
    target, column = _LABELS[table]
    append_rows(session, target, ("contact_id", column), labels)


def replace_contact_labels(
    session: Session, table: type[ContactBeat] | type[ContactTag], labels: dict[int, list[str]]
) -> None:
    """Writes: the beats (or tags) of these contacts, replacing what they had."""
    if not labels:
        return
    target, _ = _LABELS[table]
    session.execute(delete(target).where(target.c.contact_id.in_(list(labels))))
    add_contact_labels(session, table, ((cid, v) for cid, vs in labels.items() for v in vs))


def add_list_members(
    session: Session, list_id: int, contact_ids: Iterable[int], now: datetime, *, new: bool = False
) -> None:
    """Writes: memberships (existing ones stay as they are). ``new``: the contacts were
    created in this transaction, so none can be a member yet (appended in bulk)."""
    if new:
        append_rows(
            session, _MEMBERS, ("contact_id",), ((c,) for c in contact_ids), same={"list_id": list_id, "added_at": now}
        )
        return
    values = [{"list_id": list_id, "contact_id": cid, "added_at": now} for cid in contact_ids]
    if values:
        session.execute(insert_ignoring_conflicts(session, _MEMBERS), values)


def get_contact(session: Session, email: str) -> Contact:
    found = session.scalar(select(Contact).where(Contact.email == email))
    if found is None:
        raise NotFoundError(f"no contact {email!r}")
    return found


def contact_labels(session: Session, contact_id: int) -> tuple[list[str], list[str], list[str]]:
    """(beats, tags, list slugs) of one contact."""
    beats = session.scalars(
        select(ContactBeat.beat).where(ContactBeat.contact_id == contact_id).order_by(ContactBeat.beat)
    ).all()
    tags = session.scalars(
        select(ContactTag.tag).where(ContactTag.contact_id == contact_id).order_by(ContactTag.tag)
    ).all()
    lists = session.scalars(
        select(MailingList.slug)
        .join(ListMember, ListMember.list_id == MailingList.id)
        .where(ListMember.contact_id == contact_id)
        .order_by(MailingList.slug)
    ).all()
    return list(beats), list(tags), list(lists)


def _in_list(slug: str) -> ColumnElement[bool]:
    return (
        select(ListMember.contact_id)
        .join(MailingList, MailingList.id == ListMember.list_id)
        .where(ListMember.contact_id == Contact.id, MailingList.slug == slug)
        .exists()
    )


def contact_attribute_keys(session: Session, *, list_slug: str | None = None, page: int = 5000) -> list[str]:
    """Every key used in the free attributes of live contacts (of one list), sorted;
    paged by id so memory stays flat."""
    keys: set[str] = set()
    last = 0
    while True:
        query = (
            select(Contact.id, Contact.attributes)
            .where(Contact.id > last, Contact.email.is_not(None))
            .order_by(Contact.id)
            .limit(page)
        )
        if list_slug is not None:
            query = query.where(_in_list(list_slug))
        rows = session.execute(query).all()
        if not rows:
            return sorted(keys)
        for row in rows:
            attributes: dict[str, Any] = row[1] or {}
            keys.update(attributes)
        last = rows[-1][0]


def iter_contacts(
    session: Session, *, list_slug: str | None = None, page: int = 1000
) -> Iterator[tuple[Contact, list[str], list[str]]]:
    """Live contacts with beats and tags, paged by id so memory stays flat."""
    last = 0
    while True:
        query = select(Contact).where(Contact.id > last, Contact.email.is_not(None)).order_by(Contact.id).limit(page)
        if list_slug is not None:
            query = query.where(_in_list(list_slug))
        batch = list(session.scalars(query))
        if not batch:
            return
        ids = [c.id for c in batch]
        beats: dict[int, list[str]] = {}
        for cid, beat in session.execute(
            select(ContactBeat.contact_id, ContactBeat.beat)
            .where(ContactBeat.contact_id.in_(ids))
            .order_by(ContactBeat.beat)
        ):
            beats.setdefault(cid, []).append(beat)
        tags: dict[int, list[str]] = {}
        for cid, tag in session.execute(
            select(ContactTag.contact_id, ContactTag.tag).where(ContactTag.contact_id.in_(ids)).order_by(ContactTag.tag)
        ):
            tags.setdefault(cid, []).append(tag)
        for contact in batch:
            yield contact, beats.get(contact.id, []), tags.get(contact.id, [])
        session.expunge_all()
        last = ids[-1]


# --- segments --------------------------------------------------------------------------


def get_segment(session: Session, slug: str) -> Segment:
    found = session.scalar(select(Segment).where(Segment.slug == slug))
    if found is None:
        raise NotFoundError(f"no segment {slug!r} (see `mailer segments list`)")
    return found


def save_segment(session: Session, slug: str, rule: str, *, description: str | None, now: datetime) -> Segment:
    """Writes: a segment, created or with its rule replaced. The rule must already parse."""
    found = session.scalar(select(Segment).where(Segment.slug == slug))
    if found is None:
        found = Segment(slug=slug, rule=rule, description=description, created_at=now, updated_at=now)
        session.add(found)
    else:
        found.rule = rule
        found.description = description if description is not None else found.description
        found.updated_at = now
    session.flush()
    return found


def all_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.slug)))


def segment_count(session: Session, rule: str) -> int:
    """How many live contacts the rule selects now."""
    return session.scalar(select(func.count()).select_from(Contact).where(compile_rule(rule))) or 0


def addresses_needing_smtputf8(session: Session, rules: Sequence[str], *, limit: int = 3) -> tuple[int, list[str]]:
    """How many live, not globally suppressed contacts selected by any of ``rules`` have
    a non-ASCII local part (sendable only with SMTPUTF8), and up to ``limit`` of them."""
    if not rules:
        return 0, []
    if session.get_bind().dialect.name == "postgresql":
        non_ascii = func.octet_length(Contact.email) != func.length(Contact.email)
    else:
        non_ascii = func.length(cast(Contact.email, LargeBinary)) != func.length(Contact.email)
    suppressed = suppressed_in(Contact.email_hash, email_domain(session, Contact.email), [GLOBAL_SCOPE])
    query = (
        select(Contact.email)
        .where(or_(*(compile_rule(rule) for rule in rules)), non_ascii, ~suppressed)
        .order_by(Contact.id)
        .execution_options(yield_per=1000)
    )
    count, sample = 0, list[str]()
    for email in session.scalars(query):
        if email and needs_smtputf8(email):  # a non-ASCII domain alone goes as xn--
            count += 1
            if len(sample) < limit:
                sample.append(email)
    return count, sample


def segment_sample(session: Session, rule: str, limit: int = 10) -> list[Contact]:
    return list(session.scalars(select(Contact).where(compile_rule(rule)).order_by(Contact.id).limit(limit)))


# --- suppressions (the part contacts need) ----------------------------------------------


def suppressed_hashes(session: Session, hashes: Sequence[str]) -> set[str]:
    """Which of these address hashes are suppressed globally."""
    if not hashes:
        return set()
    return set(
        session.scalars(
            select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes), Suppression.scope == GLOBAL_SCOPE)
        )
    )


def contact_attributes(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The free attributes of these contacts, by id."""
    rows = session.execute(select(Contact.id, Contact.attributes).where(Contact.id.in_(ids)))
    return {row[0]: dict(row[1] or {}) for row in rows}


def contact_timezones(session: Session) -> list[str]:
    """Every distinct ``timezone`` value live contacts have (local-hour delivery reads
    each once)."""
    return list(
        session.scalars(
            select(Contact.timezone).where(Contact.timezone.is_not(None), Contact.email.is_not(None)).distinct()
        )
    )
