"""The staff contact list: search words and sort keys kept per contact, and one keyset
page of contacts by search, filters and sort (read only, but for the reindex writes).

Searching 1,000,000 contacts in well under 200 ms a page on both backends
(``bench/contact_search_bench.py``) rests on four things:

* words live in ``contact_terms`` (term, contact_id), so a prefix is a range scan of the
  primary key, never a ``LIKE '%...%'`` over every row;
* sorts walk an index (``sort_name``/``sort_outlet``/``email``/``updated_at`` with the id)
  and stop after one page: keyset paging, never OFFSET;
* a page filtered by outlet type or region walks the index of (that column, sort key, id)
  instead, so the contacts of other types or regions are never read (broad filters
  together, 'ana' in a list of a third of the contacts, type tv: 1/11 of the rows);
* each page takes the cheaper access path (:func:`_plan`): every word, list, beat, tag,
  outlet type and region is counted first, up to :data:`DRIVE_CAP` index entries (from
  the index alone); walking reads about ``limit`` / (the product of the other conditions'
  shares) rows, starting from the rarest set reads all of it (then sorts it). A rare
  condition drives; broad ones are tested on the walked rows, the rarest first;
* two broad sets with nothing rare to walk within ('ana' and a beat: 5% each, 0.3% in
  both): when their sizes, guessed from where their first entries end (:func:`_guessed`),
  say an intersection may beat the walk, they are counted further
  (:func:`_intersect_cap`), and when reading both whole costs less than the walk, the
  page starts from their intersection (``intersect``): each set's ids come from its index
  alone, so an entry read costs a twentieth of a walked row and its probes
  (:data:`READ_COST`). Only counted sizes choose an intersection.

Over 400 lines: the planner (counts, guesses, costs) and the page's statement share the
conditions; the split into a package (index keeping, plan, page) waits until the branch
speeding up the import, which edits the index keeping, is merged.
"""

from __future__ import annotations

import base64
import math
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from mailer.domain.errors import InputError
from mailer.domain.search_terms import contact_terms, name_key, outlet_key, prefix_upper, query_words
from mailer.store.bulk import append_rows
from mailer.store.tables import Contact, ContactBeat, ContactTag, ContactTerm, ListMember, MailingList

#: Conditions are counted up to this many index entries; a set under it may drive the query.
DRIVE_CAP = 20000
#: What reading one index entry of a set costs, against walking one row of a sort index and
#: probing it (measured at 1,000,000 contacts: bench/README.md, contact_search_bench.py).
READ_COST = 0.05
#: The access path that starts from the intersection of the two rarest sets' ids.
INTERSECT = "intersect"
#: Before an intersection, the walk is tried for the intersection's cost (in rows) divided by this.
TRIAL_SHARE = 8
SORTS = ("name", "email", "outlet", "updated")
# Core tables for the bulk writes (one executemany each, not the ORM's per-row bulk path).
_TERMS = typing.cast(Table, ContactTerm.__table__)
_CONTACTS = typing.cast(Table, Contact.__table__)
#: filters on a column of the contact with an index of (column, sort key, id) for every sort
FACETS = ("outlet_type", "region")


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


@dataclass(frozen=True)
class _Condition:
    """One condition of a page that an index can count: the ids it matches (from an index
    alone, to count and to drive the query) and the test of one walked contact."""

    name: str
    ids: Any
    #: the rows of another table that make a contact match (correlated with it: tested
    #: with :func:`_probe`); None for a column of the contact (``facet``)
    probe: Any = None
    #: the column and value when the condition is ``column = value`` on the contact, which
    #: has an index of (column, sort key, id) for every sort
    facet: tuple[Any, str] | None = None


def _probe(query: Any, *, fenced: bool = True) -> ColumnElement[bool]:
    """EXISTS (query LIMIT 1 OFFSET 0): the OFFSET keeps PostgreSQL from turning the test
    into a semi-join that starts from the other table (a LIMIT alone does not: it drops a
    constant one from an EXISTS; at 100,000 contacts it joined the 33,000 members of a list
    with the 5,600 contacts of a word before sorting, 44 ms, instead of walking 300 rows);
    each row of the walk is probed instead, the plan :func:`_plan` chose. Unfenced (a
    driven page, where every match is found anyway) the planner may join."""
    return exists(query.limit(1).offset(0) if fenced else query.limit(1))


def _conditions(session: Session, filters: ContactFilters) -> list[_Condition]:
    conds: list[_Condition] = []
    for word in query_words(filters.query):
        in_range = (ContactTerm.term >= word, ContactTerm.term < prefix_upper(word))
        conds.append(
            _Condition(
                f"word {word}",
                select(ContactTerm.contact_id).where(*in_range),
                probe=select(ContactTerm.contact_id).where(ContactTerm.contact_id == Contact.id, *in_range),
            )
        )
    if filters.list_slug:
        list_id = session.scalar(select(MailingList.id).where(MailingList.slug == filters.list_slug)) or 0
        conds.append(
            _Condition(
                "list",
                select(ListMember.contact_id).where(ListMember.list_id == list_id),
                probe=(
                    select(ListMember.contact_id).where(
                        ListMember.list_id == list_id, ListMember.contact_id == Contact.id
                    )
                ),
            )
        )
    if filters.beat:
        beat = filters.beat.strip().lower()
        conds.append(
            _Condition(
                "beat",
                select(ContactBeat.contact_id).where(ContactBeat.beat == beat),
                probe=(
                    select(ContactBeat.contact_id).where(ContactBeat.contact_id == Contact.id, ContactBeat.beat == beat)
                ),
            )
        )
    if filters.tag:
        tag = filters.tag.strip().lower()
        conds.append(
            _Condition(
                "tag",
                select(ContactTag.contact_id).where(ContactTag.tag == tag),
                probe=(select(ContactTag.contact_id).where(ContactTag.contact_id == Contact.id, ContactTag.tag == tag)),
            )
        )
    for name in FACETS:
        value = getattr(filters, name).strip().lower()
        if value:
            col = getattr(Contact, name)
            conds.append(_Condition(name, select(Contact.id).where(col == value), facet=(col, value)))
    return conds


def _capped_counts(session: Session, conds: Sequence[_Condition], cap: int) -> tuple[list[int], list[int], int]:
    """How many index entries each condition matches, up to ``cap``; the highest contact
    id among those entries (see :func:`_guessed`); and the highest contact id of all
    (about how many contacts there are): one statement, each index read once."""
    parts = []
    for i, cond in enumerate(conds):
        first = cond.ids.limit(cap).subquery()
        parts.append(select(literal(i), func.count(), func.max(first.c[0])).select_from(first))
    parts.append(select(literal(-1), literal(0), select(func.max(Contact.id)).scalar_subquery()))
    counts, reach, total = [0] * len(conds), [0] * len(conds), 0
    row: Any
    for row in session.execute(union_all(*parts)):
        i, n, top = int(row[0]), int(row[1] or 0), int(row[2] or 0)
        if i < 0:
            total = top
        else:
            counts[i], reach[i] = n, top
    return counts, reach, total


def _guessed(conds: Sequence[_Condition], counts: Sequence[int], reach: Sequence[int], total: int) -> list[int]:
    """``counts`` with the size of each set that reached :data:`DRIVE_CAP` guessed from the
    highest contact id among its first entries: a set's index holds its ids in order (one
    beat, tag, list or word), so the first 20,000 of a beat of 50,000 contacts end near
    id 400,000 of 1,000,000. Ids bunched low (a list of the oldest contacts) make a guess
    too large, and a prefix of many words ('a') one too small: a guess may only spare
    counting further, never choose an intersection."""
    out = list(counts)
    for i, cond in enumerate(conds):
        if cond.facet is None and counts[i] >= DRIVE_CAP and reach[i] > 0:
            out[i] = max(DRIVE_CAP, min(total, DRIVE_CAP * total // reach[i]))
    return out


def _counted_further(
    session: Session, conds: Sequence[_Condition], counts: Sequence[int], guessed: Sequence[int], cap: int
) -> list[int]:
    """``counts`` with every set that reached :data:`DRIVE_CAP` counted again, up to ``cap``,
    but for a set guessed at ``cap`` or more (:func:`_guessed`), which keeps ``cap``: a
    guess too large (ids bunched low) at worst leaves that set out of an intersection.
    'times' (200,000 entries) with 'ana' and a beat: 40 ms of PostgreSQL's CPU not spent."""
    further = list(counts)
    again = []
    for i, n in enumerate(counts):
        if conds[i].facet is None and n >= DRIVE_CAP:
            if guessed[i] >= cap:
                further[i] = cap
            else:
                again.append(i)
    for i, n in zip(again, _capped_counts(session, [conds[i] for i in again], cap)[0], strict=True):
        further[i] = max(DRIVE_CAP, n)
    return further


def _intersect_cap(total: int, limit: int) -> int:
    """How far the sets of a page are counted when two of them may drive it together: past
    this many entries their intersection costs more than a walk that finds ``limit`` rows
    (the other set holding at least :data:`DRIVE_CAP` entries, as it does when counted
    again): 223,606 for 50 rows of 1,000,000 contacts."""
    return min(total, int(total * math.sqrt(limit / (READ_COST * DRIVE_CAP))))


def _pair(conds: Sequence[_Condition], counts: Sequence[int]) -> tuple[int, int] | None:
    """The two rarest sets (words, list, beat, tag) of a page, whose ids it may intersect."""
    sets = sorted((i for i, c in enumerate(conds) if c.facet is None), key=lambda i: counts[i])
    return (sets[0], sets[1]) if len(sets) >= 2 else None


def _plan(
    conds: Sequence[_Condition], counts: Sequence[int], total: int, limit: int, *, cap: int = DRIVE_CAP
) -> tuple[str, float]:
    """The cheapest access path, and its cost in rows walked (an index entry of a set read
    whole costs :data:`READ_COST` of one): walking a sort index (the plain one, or the one
    within the rarest outlet type or region filtered on) until a page is found, about
    ``limit`` / the product of the other conditions' shares of the contacts rows; starting
    from the rarest counted set of ids (a word, list, beat or tag under :data:`DRIVE_CAP`)
    and sorting it; or, when both were counted to the end (under ``cap``), starting from
    the intersection of the two rarest sets: both read whole, each contact of both fetched."""
    share = [max(n, 1) / max(total, 1) for n in counts]
    facets = [i for i, c in enumerate(conds) if c.facet is not None]
    path = min(facets, key=lambda i: counts[i]) if facets else None
    walk = float(limit)
    for i, s in enumerate(share):
        if i != path:
            walk /= min(s, 1.0)
    # ... but never more rows than the walked index holds
    walk = min(walk, float(total if path is None else counts[path]))
    best, cost = ("sort" if path is None else f"sort in {conds[path].name}"), walk
    sets = [i for i, c in enumerate(conds) if c.facet is None and counts[i] < min(cap, DRIVE_CAP)]
    if sets:
        rarest = min(sets, key=lambda i: counts[i])
        if counts[rarest] <= cost:
            best, cost = conds[rarest].name, float(counts[rarest])
    pair = _pair(conds, counts)
    if pair is not None and counts[pair[1]] < cap:
        a, b = pair
        both = READ_COST * (counts[a] + counts[b]) + total * share[a] * share[b]
        if both < cost:
            best, cost = INTERSECT, both
    return best, cost


def _worth_counting_on(conds: Sequence[_Condition], counts: Sequence[int], cost: float) -> bool:
    """Whether the two rarest sets, one of them past :data:`DRIVE_CAP`, might intersect for
    less than the chosen path costs (reading each counted entry costs at least that)."""
    pair = _pair(conds, counts)
    return pair is not None and counts[pair[1]] >= DRIVE_CAP and READ_COST * (counts[pair[0]] + DRIVE_CAP) < cost


def _walk_path(conds: Sequence[_Condition], counts: Sequence[int]) -> str:
    """The walk :func:`_plan` weighs: down the sort index, or within the rarest facet's."""
    facets = [i for i, c in enumerate(conds) if c.facet is not None]
    return f"sort in {conds[min(facets, key=lambda i: counts[i])].name}" if facets else "sort"


def _position_after(
    session: Session, column: Any, descending: bool, cursor: str | None, sort: str, rows: int
) -> tuple[Any, int] | None:
    """The (sort key, id) of the contact ``rows`` down the sort from ``cursor`` (read from
    the sort index alone), None when fewer are left."""
    position = tuple_(column, Contact.id)
    query = select(column, Contact.id)
    if cursor:
        key, ident = _uncursor(cursor, sort)
        query = query.where(position < tuple_(key, ident) if descending else position > tuple_(key, ident))
    order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
    row = session.execute(query.order_by(*order).offset(rows - 1).limit(1)).first()
    return None if row is None else (row[0], int(row[1]))


def contact_page(
    session: Session,
    filters: ContactFilters,
    *,
    sort: str = "name",
    cursor: str | None = None,
    limit: int = 50,
    plan: str | None = None,
) -> ContactPage:
    """One page of live contacts matching ``filters`` in ``sort`` order (name, email,
    outlet, updated — newest first), after ``cursor``. InputError for a bad sort or cursor.

    ``plan`` forces an access path (one of the :attr:`ContactPage.driver` names this
    filter allows: "sort", "sort in outlet_type", "word ana", "list"...) for tests and
    benchmarks; by default the cheapest is chosen (:func:`_plan`)."""
    if sort not in SORTS:
        raise InputError(f"sort: one of {', '.join(SORTS)}")
    limit = max(1, min(limit, 200))
    column, descending = _sort_columns(sort)
    conds = _conditions(session, filters)
    counts, reach, total = _capped_counts(session, conds, DRIVE_CAP) if conds else ([], [], 0)
    chosen, cost = _plan(conds, counts, total, limit)
    if _worth_counting_on(conds, counts, cost):
        # two broad sets ('ana' and a beat: 50,000 contacts each, 2,700 in both): only
        # their sizes tell a walk of ~18,000 rows from an intersection of 100,000 entries;
        # counting them costs about as much as reading them, so not when the guessed
        # sizes say the walk is shorter anyway ('ana times': 'times' has 200,000 entries)
        cap = _intersect_cap(total, limit)
        guessed = _guessed(conds, counts, reach, total)
        if _plan(conds, guessed, total, limit, cap=cap)[0] == INTERSECT:
            counts = _counted_further(session, conds, counts, guessed, cap)
            chosen, cost = _plan(conds, counts, total, limit, cap=cap)
    if plan is not None:
        chosen = plan
    allowed = {"sort"} | {f"sort in {c.name}" if c.facet is not None else c.name for c in conds}
    if _pair(conds, counts) is not None:
        allowed.add(INTERSECT)
    if chosen not in allowed:
        raise InputError(f"plan: one of {', '.join(sorted(allowed))}")

    found: Sequence[Any] | None = None
    if plan is None and chosen == INTERSECT:
        # the walk first, for a few rows (an eighth of the intersection's cost): a word
        # that sorts where the walk starts ('al' by outlet: "Alalto Post"...) fills a
        # page in ~1,000 rows, however many contacts it matches further down
        walk = _walk_path(conds, counts)
        tried = max(limit + 1, int(cost / TRIAL_SHARE))
        bound = _position_after(session, column, descending, cursor, sort, tried)
        trial = session.execute(
            _page_query(session, conds, counts, filters, walk, column, descending, cursor, limit, sort, bound)
        ).all()
        if len(trial) > limit or bound is None:
            found, chosen = trial, walk
    if found is None:
        query = _page_query(session, conds, counts, filters, chosen, column, descending, cursor, limit, sort)
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
    return ContactPage(rows, next_cursor, chosen)


def _page_query(
    session: Session,
    conds: Sequence[_Condition],
    counts: Sequence[int],
    filters: ContactFilters,
    chosen: str,
    column: Any,
    descending: bool,
    cursor: str | None,
    limit: int,
    sort: str,
    bound: tuple[Any, int] | None = None,
) -> Select[Any]:
    """The statement of one page by the access path ``chosen`` (``limit`` + 1 rows: the
    last tells that there is a next page); with ``bound``, a walk stops at that (sort key,
    id) position, included."""
    walking = chosen.startswith("sort")
    # the row's own columns are tested before the probes of other tables (SQLite keeps
    # the order given): on a walk down a sort index most rows fail the cheap test
    where: list[ColumnElement[bool]] = [Contact.email.is_not(None)]
    for cond in conds:
        if cond.facet is not None:
            col, value = cond.facet
            # a plain comparison when a page walks within a facet (PostgreSQL then knows
            # how many rows each facet keeps: it walks one of their indexes); otherwise
            # concatenated with '' so that no planner starts from a facet's index instead
            where.append(col == value if chosen.startswith("sort in ") else col.concat("") == value)
    if filters.country:
        where.append(Contact.country == filters.country.strip().upper())
    if filters.language:
        where.append(Contact.language == filters.language.strip().lower())
    # the probe most likely to fail first (in the order given when counts tie at the cap)
    order_of = sorted(range(len(conds)), key=lambda i: counts[i])
    # a walk probes each row (fenced); a driven page lets PostgreSQL join the other sets'
    # ids to the driver's ('ana' with tag-05 at 1,000,000 contacts: 79 ms of CPU probing
    # each of the tag's 10,000 contacts, 34 ms when it hash-joined them)
    drivers = [i for i, c in enumerate(conds) if c.name == chosen]
    if chosen == INTERSECT:
        drivers = list(_pair(conds, counts) or ())
    where.extend(
        _probe(conds[i].probe, fenced=walking) for i in order_of if conds[i].probe is not None and i not in drivers
    )
    if len(drivers) == 2:
        # both sets read whole from their indexes and intersected (a hashed set operation
        # on PostgreSQL; on SQLite the first set's ids go in a temporary B-tree and the
        # second's are looked up in it), then each contact of both fetched by id. Not a
        # semi-join: planned on an estimate of a prefix's entries (PostgreSQL: 191 for
        # the 77,126 of 'al'), it probed the other set's index once per entry (300 ms;
        # SQLite did so always: 80 ms of CPU against 27)
        rare, broad = (conds[i].ids for i in drivers)
        both = rare.intersect(broad).scalar_subquery()
        if session.get_bind().dialect.name == "postgresql":
            # as an array computed once: PostgreSQL takes an INTERSECT to be as large as
            # its smaller side (48,000 contacts for 'ana' and beat-03, which share 2,786)
            # and hash-joined it to a scan of every contact (720 ms instead of 56)
            where.append(Contact.id == any_(func.array(both)))
        else:
            where.append(Contact.id.in_(both))
    for i in drivers[:1] if len(drivers) == 1 else ():
        where.append(Contact.id.in_(conds[i].ids.scalar_subquery()))

    position = tuple_(column, Contact.id)
    if cursor:
        key, ident = _uncursor(cursor, sort)
        # a row value comparison: one range scan of the (sort key, id) index on both backends
        where.append(position < tuple_(key, ident) if descending else position > tuple_(key, ident))
    if bound is not None:
        where.append(position >= tuple_(*bound) if descending else position <= tuple_(*bound))
    matches = select(
        Contact.id,
        Contact.email,
        Contact.first_name,
        Contact.last_name,
        Contact.outlet,
        Contact.outlet_type,
        Contact.region,
        Contact.updated_at,
        column.label("sort_key"),
    ).where(*where)
    if walking:
        order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
        return matches.order_by(*order).limit(limit + 1)
    else:
        # the driving set's matches, then sorted: OFFSET 0 keeps the planner from merging
        # the two (with the LIMIT in view, PostgreSQL walked the sort index instead,
        # probing each row: 216 ms for 'ana' and a beat at 100,000 contacts)
        driven = matches.offset(0).subquery()
        key_col, id_col = driven.c.sort_key, driven.c.id
        order = (key_col.desc(), id_col.desc()) if descending else (key_col.asc(), id_col.asc())
        return select(driven).order_by(*order).limit(limit + 1)


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
