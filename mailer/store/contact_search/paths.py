"""The statement of one page by each access path :func:`~mailer.store.contact_search.costs.plan`
weighs: a walk down a sort index (``sort``, or within a facet's (column, sort key, id)
index: ``sort in outlet_type``), testing each row; a set's ids read and sorted (``word
ana``, ``list``, ``beat``, ``tag``); or the intersection of the two rarest sets' ids
(``intersect``), each read whole from its covering index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, any_, func, select, tuple_
from sqlalchemy.orm import Session

from mailer.store.contact_search.costs import INTERSECT, rarest_pair
from mailer.store.contact_search.cursor import decode
from mailer.store.contact_search.filters import Condition, ContactFilters, probe_exists
from mailer.store.tables import Contact


def page_query(
    session: Session,
    conds: Sequence[Condition],
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
    drivers = [i for i, c in enumerate(conds) if c.name == chosen]
    if chosen == INTERSECT:
        drivers = list(rarest_pair(conds, counts) or ())
    # the probe most likely to fail first (in the order given when counts tie at the cap)
    order_of = sorted(range(len(conds)), key=lambda i: counts[i])
    probed = [i for i in order_of if conds[i].probe is not None and i not in drivers]
    live = Contact.email.is_not(None)
    # SQLite tests a row's own columns before any subquery, and reading a column reads
    # the row: on a walk down a sort index (sort key, id) that is a seek into the table
    # for every row walked, ~2.6 us of the ~6 a row costs with two probes. So on a walk
    # with probes the live test goes inside the last probe (the same condition, tested
    # last) and a row is read only once its probes pass ('a' with beat-03, a deep page by
    # outlet at 100,000 contacts: 73 -> 29 ms of CPU). PostgreSQL reads the row anyway.
    late = walking and bool(probed) and session.get_bind().dialect.name == "sqlite"
    where: list[ColumnElement[bool]] = [] if late else [live]
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
    # a walk probes each row (fenced); a driven page lets PostgreSQL join the other sets'
    # ids to the driver's ('ana' with tag-05 at 1,000,000 contacts: 79 ms of CPU probing
    # each of the tag's 10,000 contacts, 34 ms when it hash-joined them)
    where.extend(
        probe_exists(conds[i].probe.where(live) if late and i == probed[-1] else conds[i].probe, fenced=walking)
        for i in probed
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
        key, ident = decode(cursor, sort)
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
