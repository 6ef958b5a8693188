"""Which access path a page takes (:func:`plan`), from what its conditions' indexes say:
each word, list, beat, tag, outlet type and region is counted first, up to
:data:`DRIVE_CAP` index entries (from the index alone); walking reads about ``limit`` /
(the product of the other conditions' shares) rows, starting from the rarest set reads
all of it (then sorts it). Two broad sets whose guessed sizes (:func:`guessed`) say an
intersection may beat the walk are counted further (:func:`intersect_cap`); only counted
sizes choose an intersection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from mailer.store.contact_search.filters import Condition
from mailer.store.tables import Contact

#: Conditions are counted up to this many index entries; a set under it may drive the query.
DRIVE_CAP = 20000
#: What reading one index entry of a set costs, against walking one row of a sort index and
#: probing it (measured at 1,000,000 contacts: bench/README.md, contact_search_bench.py).
READ_COST = 0.05
#: The access path that starts from the intersection of the two rarest sets' ids.
INTERSECT = "intersect"
#: Before an intersection, the walk is tried for the intersection's cost (in rows) divided by this.
TRIAL_SHARE = 8


def capped_counts(session: Session, conds: Sequence[Condition], cap: int) -> tuple[list[int], list[int], int]:
    """How many index entries each condition matches, up to ``cap``; the highest contact
    id among those entries (see :func:`guessed`); and the highest contact id of all
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


def guessed(conds: Sequence[Condition], counts: Sequence[int], reach: Sequence[int], total: int) -> list[int]:
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


def counted_further(
    session: Session, conds: Sequence[Condition], counts: Sequence[int], guessed: Sequence[int], cap: int
) -> list[int]:
    """``counts`` with every set that reached :data:`DRIVE_CAP` counted again, up to ``cap``,
    but for a set guessed at ``cap`` or more (:func:`guessed`), which keeps ``cap``: a
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
    for i, n in zip(again, capped_counts(session, [conds[i] for i in again], cap)[0], strict=True):
        further[i] = max(DRIVE_CAP, n)
    return further


def intersect_cap(total: int, limit: int) -> int:
    """How far the sets of a page are counted when two of them may drive it together: past
    this many entries their intersection costs more than a walk that finds ``limit`` rows
    (the other set holding at least :data:`DRIVE_CAP` entries, as it does when counted
    again): 223,606 for 50 rows of 1,000,000 contacts."""
    return min(total, int(total * math.sqrt(limit / (READ_COST * DRIVE_CAP))))


def rarest_pair(conds: Sequence[Condition], counts: Sequence[int]) -> tuple[int, int] | None:
    """The two rarest sets (words, list, beat, tag) of a page, whose ids it may intersect."""
    sets = sorted((i for i, c in enumerate(conds) if c.facet is None), key=lambda i: counts[i])
    return (sets[0], sets[1]) if len(sets) >= 2 else None


def plan(
    conds: Sequence[Condition], counts: Sequence[int], total: int, limit: int, *, cap: int = DRIVE_CAP
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
    other = driven(conds, counts, total, cap=cap)
    if other is not None and (other[1] < cost or (other[0] != INTERSECT and other[1] <= cost)):
        best, cost = other
    return best, cost


def driven(
    conds: Sequence[Condition], counts: Sequence[int], total: int, *, cap: int = DRIVE_CAP
) -> tuple[str, float] | None:
    """The cheapest path that starts from a set's ids, and its cost (see :func:`plan`): the
    rarest set counted under :data:`DRIVE_CAP`, or the intersection of the two rarest
    when both were counted under ``cap``; None when there is neither."""
    best: tuple[str, float] | None = None
    sets = [i for i, c in enumerate(conds) if c.facet is None and counts[i] < min(cap, DRIVE_CAP)]
    if sets:
        rarest = min(sets, key=lambda i: counts[i])
        best = conds[rarest].name, float(counts[rarest])
    pair = rarest_pair(conds, counts)
    if pair is not None and counts[pair[1]] < cap:
        a, b = pair
        share_a, share_b = (max(counts[i], 1) / max(total, 1) for i in pair)
        both = READ_COST * (counts[a] + counts[b]) + total * share_a * share_b
        if best is None or both < best[1]:
            best = INTERSECT, both
    return best


def walk_left(limit: int, found: int, walked: int) -> float:
    """How many more rows a walk that found ``found`` matches in its first ``walked``
    rows reads before it holds a page (``limit`` + 1), at the density it met there: not
    the even spread of each condition along the sort that :func:`plan` assumes ('a'
    sorts first by outlet: "Alalto Post"..., so a page 90% down meets a third fewer
    matches, and walks 15,000 rows where the plan said 7,500); none found counts as half
    of one."""
    return (limit + 1 - found) * walked / max(found, 0.5)


def worth_counting_on(conds: Sequence[Condition], counts: Sequence[int], cost: float) -> bool:
    """Whether the two rarest sets, one of them past :data:`DRIVE_CAP`, might intersect for
    less than the chosen path costs (reading each counted entry costs at least that)."""
    pair = rarest_pair(conds, counts)
    return pair is not None and counts[pair[1]] >= DRIVE_CAP and READ_COST * (counts[pair[0]] + DRIVE_CAP) < cost


def walk_path(conds: Sequence[Condition], counts: Sequence[int]) -> str:
    """The walk :func:`plan` weighs: down the sort index, or within the rarest facet's."""
    facets = [i for i, c in enumerate(conds) if c.facet is not None]
    return f"sort in {conds[min(facets, key=lambda i: counts[i])].name}" if facets else "sort"
