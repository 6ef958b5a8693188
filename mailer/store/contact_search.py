"""The staff contact list: search words and sort keys kept per contact, and one keyset
page of contacts by search, filters and sort (read only, but for the reindex writes).

Searching 1,000,000 contacts in well under 200 ms a page on both backends
(``bench/contact_search_bench.py``) rests on three things:

* words live in ``contact_terms`` (term, contact_id), so a prefix is a range scan of the
  primary key, never a ``LIKE '%...%'`` over every row;
* sorts walk an index (``sort_name``/``sort_outlet``/``email``/``updated_at`` with the id)
  and stop after one page: keyset paging, never OFFSET;
* the page is driven by its most selective condition: each word, list, beat or tag is
  counted up to :data:`DRIVE_CAP` index entries first. When one matches fewer rows, the
  query starts from those contact ids and sorts them (a few thousand rows at most);
  otherwise every condition matches at least 1 row in ``contacts/DRIVE_CAP``, and the walk
  down the sort index finds a page quickly.
"""

from __future__ import annotations

import base64
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, delete, exists, func, select, tuple_, update
from sqlalchemy.orm import Session

from mailer.domain.errors import InputError
from mailer.domain.search_terms import contact_terms, name_key, outlet_key, prefix_upper, query_words
from mailer.store.bulk import append_rows
from mailer.store.tables import Contact, ContactBeat, ContactTag, ContactTerm, ListMember, MailingList

#: A condition matching fewer index entries than this drives the query (see the module docstring).
DRIVE_CAP = 5000
SORTS = ("name", "email", "outlet", "updated")
# Core tables for the bulk writes (one executemany each, not the ORM's per-row bulk path).
_TERMS = typing.cast(Table, ContactTerm.__table__)
_CONTACTS = typing.cast(Table, Contact.__table__)


# --- keeping the index --------------------------------------------------------------------


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


def add_terms(session: Session, words: Iterable[tuple[int, Iterable[str]]]) -> None:
    """Writes: the search words of contacts that have none yet (just inserted, their sort
    keys written with them), as (contact id, words) — what :func:`reindex_contacts` would
    find, without reading the rows back."""
    # In term order, as the primary key (term, contact_id) is: each index page is visited once.
    append_rows(session, _TERMS, ("term", "contact_id"), sorted((w, cid) for cid, ws in words for w in ws))


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


# --- one page -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactFilters:
    """What the contact list is narrowed by (empty: not used)."""

    query: str = ""
    list_slug: str = ""
    outlet_type: str = ""
    beat: str = ""
    tag: str = ""
    region: str = ""
    country: str = ""
    language: str = ""

    def active(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)


@dataclass(frozen=True)
class ContactRow:
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    outlet: str | None
    outlet_type: str | None
    region: str | None
    updated_at: datetime
    beats: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContactPage:
    rows: list[ContactRow]
    #: the cursor of the next page, None on the last one
    next_cursor: str | None
    #: which condition drove the query ("sort" when none was selective): for the benchmark
    driver: str


def _cursor(values: tuple[Any, ...]) -> str:
    text = "\x1f".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in values)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def _uncursor(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
        value, _, ident = text.rpartition("\x1f")
        key: Any = datetime.fromisoformat(value) if sort == "updated" else value
        return key, int(ident)
    except (ValueError, UnicodeError) as exc:
        raise InputError("cursor: not a page of this list") from exc


def _sort_columns(sort: str) -> tuple[Any, bool]:
    """The sort column and whether it runs descending."""
    if sort == "email":
        return Contact.email, False
    if sort == "outlet":
        return Contact.sort_outlet, False
    if sort == "updated":
        return Contact.updated_at, True
    return Contact.sort_name, False


def _word_exists(word: str) -> ColumnElement[bool]:
    return _probe(
        select(ContactTerm.contact_id).where(
            ContactTerm.contact_id == Contact.id, ContactTerm.term >= word, ContactTerm.term < prefix_upper(word)
        )
    )


def _probe(query: Any) -> ColumnElement[bool]:
    """EXISTS (query LIMIT 1): the LIMIT keeps PostgreSQL from turning the test into a
    semi-join that starts from the other table (it did for a word in 5% of 1,000,000
    contacts: 600 ms, sorting 50,000 rows); each row of the walk is probed instead."""
    return exists(query.limit(1))


def _capped_count(session: Session, query: Any) -> int:
    return session.scalar(select(func.count()).select_from(query.limit(DRIVE_CAP).subquery())) or 0


def contact_page(
    session: Session,
    filters: ContactFilters,
    *,
    sort: str = "name",
    cursor: str | None = None,
    limit: int = 50,
) -> ContactPage:
    """One page of live contacts matching ``filters`` in ``sort`` order (name, email,
    outlet, updated — newest first), after ``cursor``. InputError for a bad sort or cursor."""
    if sort not in SORTS:
        raise InputError(f"sort: one of {', '.join(SORTS)}")
    limit = max(1, min(limit, 200))
    column, descending = _sort_columns(sort)
    where: list[ColumnElement[bool]] = [Contact.email.is_not(None)]
    # the row's own columns are tested before the probes of other tables (SQLite keeps
    # the order given): on a walk down the sort index most rows fail the cheap test
    probes: list[tuple[str, ColumnElement[bool]]] = []
    # candidates to drive the query: (name, id subquery)
    drivers: list[tuple[str, Any]] = []
    for word in query_words(filters.query):
        probes.append((f"word {word}", _word_exists(word)))
        drivers.append(
            (
                f"word {word}",
                select(ContactTerm.contact_id).where(ContactTerm.term >= word, ContactTerm.term < prefix_upper(word)),
            )
        )
    if filters.list_slug:
        list_id = session.scalar(select(MailingList.id).where(MailingList.slug == filters.list_slug)) or 0
        probes.append(
            (
                "list",
                _probe(
                    select(ListMember.contact_id).where(
                        ListMember.list_id == list_id, ListMember.contact_id == Contact.id
                    )
                ),
            )
        )
        drivers.append(("list", select(ListMember.contact_id).where(ListMember.list_id == list_id)))
    if filters.beat:
        beat = filters.beat.strip().lower()
        probes.append(
            (
                "beat",
                _probe(
                    select(ContactBeat.contact_id).where(ContactBeat.contact_id == Contact.id, ContactBeat.beat == beat)
                ),
            )
        )
        drivers.append(("beat", select(ContactBeat.contact_id).where(ContactBeat.beat == beat)))
    if filters.tag:
        tag = filters.tag.strip().lower()
        probes.append(
            (
                "tag",
                _probe(select(ContactTag.contact_id).where(ContactTag.contact_id == Contact.id, ContactTag.tag == tag)),
            )
        )
        drivers.append(("tag", select(ContactTag.contact_id).where(ContactTag.tag == tag)))
    for name, col in (("outlet_type", Contact.outlet_type), ("region", Contact.region)):
        value = getattr(filters, name).strip().lower()
        if value:
            # concatenated with '' so that the planner walks the sort index instead of
            # this column's index (unless it drives, below)
            where.append(col.concat("") == value)
            drivers.append((name, select(Contact.id).where(col == value)))
    if filters.country:
        where.append(Contact.country == filters.country.strip().upper())
    if filters.language:
        where.append(Contact.language == filters.language.strip().lower())

    driver = "sort"
    best: tuple[int, str, Any] | None = None
    counts: dict[str, int] = {}
    for name, ids in drivers:
        n = counts[name] = _capped_count(session, ids)
        if n < DRIVE_CAP and (best is None or n < best[0]):
            best = (n, name, ids)
    # the probe most likely to fail first
    where.extend(clause for _, clause in sorted(probes, key=lambda p: counts.get(p[0], DRIVE_CAP)))
    if best is not None:
        driver = best[1]
        where.append(Contact.id.in_(best[2].scalar_subquery()))

    if cursor:
        key, ident = _uncursor(cursor, sort)
        # a row value comparison: one range scan of the (sort key, id) index on both backends
        position = tuple_(column, Contact.id)
        where.append(position < tuple_(key, ident) if descending else position > tuple_(key, ident))
    order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
    query = (
        select(
            Contact.id,
            Contact.email,
            Contact.first_name,
            Contact.last_name,
            Contact.outlet,
            Contact.outlet_type,
            Contact.region,
            Contact.updated_at,
            column,
        )
        .where(*where)
        .order_by(*order)
        .limit(limit + 1)
    )
    found = session.execute(query).all()
    more = len(found) > limit
    found = found[:limit]
    labels = _labels(session, [r[0] for r in found])
    rows = [
        ContactRow(
            id=r[0],
            email=r[1],
            first_name=r[2],
            last_name=r[3],
            outlet=r[4],
            outlet_type=r[5],
            region=r[6],
            updated_at=r[7],
            beats=labels[r[0]][0],
            tags=labels[r[0]][1],
        )
        for r in found
    ]
    next_cursor = _cursor((found[-1][8], found[-1][0])) if more and found else None
    return ContactPage(rows, next_cursor, driver)


def _labels(session: Session, ids: Sequence[int]) -> dict[int, tuple[list[str], list[str]]]:
    out: dict[int, tuple[list[str], list[str]]] = {i: ([], []) for i in ids}
    if not ids:
        return out
    for cid, beat in session.execute(
        select(ContactBeat.contact_id, ContactBeat.beat)
        .where(ContactBeat.contact_id.in_(ids))
        .order_by(ContactBeat.beat)
    ):
        out[cid][0].append(beat)
    for cid, tag in session.execute(
        select(ContactTag.contact_id, ContactTag.tag).where(ContactTag.contact_id.in_(ids)).order_by(ContactTag.tag)
    ):
        out[cid][1].append(tag)
    return out


def matching_ids(session: Session, filters: ContactFilters, *, limit: int) -> list[int]:
    """Ids of up to ``limit`` contacts matching ``filters`` (a list's "add these")."""
    ids: list[int] = []
    cursor: str | None = None
    while len(ids) < limit:
        page = contact_page(session, filters, sort="email", cursor=cursor, limit=min(200, limit - len(ids)))
        ids.extend(r.id for r in page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return ids
