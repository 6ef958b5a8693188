"""One keyset page of live contacts by search, filters and sort (read only): the path
:func:`~mailer.store.contact_search.costs.plan` chose, the page's statement
(:mod:`~mailer.store.contact_search.paths`), the rows with their beats and tags."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.domain.errors import InputError
from mailer.store.contact_search import costs, paths
from mailer.store.contact_search.costs import INTERSECT
from mailer.store.contact_search.cursor import encode, position_after
from mailer.store.contact_search.filters import SORTS, ContactFilters, conditions, sort_columns
from mailer.store.tables import ContactBeat, ContactTag


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
    benchmarks; by default the cheapest is chosen
    (:func:`~mailer.store.contact_search.costs.plan`)."""
    if sort not in SORTS:
        raise InputError(f"sort: one of {', '.join(SORTS)}")
    limit = max(1, min(limit, 200))
    column, descending = sort_columns(sort)
    conds = conditions(session, filters)
    counts, reach, total = costs.capped_counts(session, conds, costs.DRIVE_CAP) if conds else ([], [], 0)
    chosen, cost = costs.plan(conds, counts, total, limit)
    walked: Sequence[Any] = []  # a page's first rows from a walk tried first, down to ``bound``
    bound: tuple[Any, int] | None = None
    left = math.inf  # the rows that walk would still read (:func:`costs.walk_left`)
    if costs.worth_counting_on(conds, counts, cost):
        # two broad sets ('ana' and a beat: 50,000 contacts each, 2,700 in both): only
        # their sizes tell a walk of ~18,000 rows from an intersection of 100,000 entries;
        # counting them costs about as much as reading them, so not when the guessed
        # sizes say the walk is shorter anyway ('ana times': 'times' has 200,000 entries)
        cap = costs.intersect_cap(total, limit)
        guessed = costs.guessed(conds, counts, reach, total)
        guess, guessed_cost = costs.plan(conds, guessed, total, limit, cap=cap)
        if guess == INTERSECT and plan is None:
            # the walk first, for an eighth of what the intersection is guessed to cost,
            # before counting anything: a word that sorts where the walk starts ('al' or
            # 'a' by outlet: "Alalto Post"...) fills a page in ~1,000 rows, however many
            # contacts it matches further down ('a' + beat-03: 16 ms of CPU, 33 with the
            # count)
            walk = costs.walk_path(conds, counts)
            tried = max(limit + 1, int(guessed_cost / costs.TRIAL_SHARE))
            bound = position_after(session, column, descending, cursor, sort, tried)
            walked = session.execute(
                paths.page_query(session, conds, counts, filters, walk, column, descending, cursor, limit, sort, bound)
            ).all()
            if len(walked) > limit or bound is None:
                return _page(session, walked, limit, walk)
            left = costs.walk_left(limit, len(walked), tried)
        counted = guess == INTERSECT and left > guessed_cost
        if counted:
            counts = costs.counted_further(session, conds, counts, guessed, cap)
            chosen, cost = costs.plan(conds, counts, total, limit, cap=cap)
        if bound is not None:
            # the walk goes on from where it stopped unless the plan on counted sizes
            # chose a path from the sets' ids and that costs less than what is left of
            # the walk at the density the trial met. Only that way: a trial meets a
            # handful of matches at most ('a' + beat-03, a page 90% down by outlet: 2
            # expected in 562 rows), too few to send a page away from the walk the plan
            # chose (when it did, 158 -> 185 ms of CPU on SQLite, 186 -> 226 on PostgreSQL)
            other = costs.driven(conds, counts, total, cap=cap) if counted and not chosen.startswith("sort") else None
            if other is None or left <= other[1]:
                rest = paths.page_query(
                    session, conds, counts, filters, walk, column, descending, encode(bound), limit - len(walked), sort
                )
                return _page(session, [*walked, *session.execute(rest).all()], limit, walk)
            chosen = other[0]
    if plan is not None:
        chosen = plan
    allowed = {"sort"} | {f"sort in {c.name}" if c.facet is not None else c.name for c in conds}
    if costs.rarest_pair(conds, counts) is not None:
        allowed.add(INTERSECT)
    if chosen not in allowed:
        raise InputError(f"plan: one of {', '.join(sorted(allowed))}")
    query = paths.page_query(session, conds, counts, filters, chosen, column, descending, cursor, limit, sort)
    return _page(session, session.execute(query).all(), limit, chosen)


def _page(session: Session, found: Sequence[Any], limit: int, chosen: str) -> ContactPage:
    """The page of the first ``limit`` rows ``found`` (one more: there is a next page)."""
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
    next_cursor = encode((found[-1][8], found[-1][0])) if more and found else None
    return ContactPage(rows, next_cursor, chosen)


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
