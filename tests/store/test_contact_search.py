"""The staff contact search (issue 15): words by prefix across name, email, outlet, beats
and tags; filters; sorts; keyset pages; the index kept by import, edit and erasure."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from mailer.audience import contact_edit, contacts, erasure
from mailer.domain import search_terms
from mailer.domain.errors import InputError
from mailer.domain.search_terms import query_words
from mailer.domain.states import email_hash
from mailer.runtime import Runtime
from mailer.store import contact_search
from mailer.store.contact_search import ContactFilters, contact_page, costs, paths
from mailer.store.contact_search.filters import Condition, conditions
from mailer.store.db import transaction
from mailer.store.tables import Contact, ContactBeat, ContactTag, ListMember, MailingList
from tests.support.constants import FIXED_NOW

ROWS = """email,first_name,last_name,outlet,outlet_type,beats,tags,region
clemence@lequotidien.example.com,Clémence,Aubert,Le Quotidien,print,politics|foreign-policy,vip,eu-west
dana@harborledger.example.com,Dana,Reyes,Harbor Ledger,online,business,,us-east
liam@example.org,Liam,O'Brien,Tis Media,tv,foreign-policy,freelance,eu-west
zoe@wire.example.net,Zoë,Adams,Example Wire,wire,business|energy,vip,us-west
"""


@pytest.fixture
def imported(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(ROWS, encoding="utf-8")
    result = contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW)
    assert result.rejected == []


def emails(rt: Runtime, sort: str = "name", **filters: str) -> list[str]:
    with transaction(rt.sessions) as s:
        return [r.email for r in contact_page(s, ContactFilters(**filters), sort=sort).rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("clem", ["clemence@lequotidien.example.com"]),  # accent folded
        ("ZOE", ["zoe@wire.example.net"]),
        ("ledg", ["dana@harborledger.example.com"]),  # outlet word
        ("dana@harb", ["dana@harborledger.example.com"]),  # the address whole
        ("harborledger", ["dana@harborledger.example.com"]),  # a domain label
        ("foreign", ["clemence@lequotidien.example.com", "liam@example.org"]),  # beat part
        ("foreign-policy aub", ["clemence@lequotidien.example.com"]),
        ("vip business", ["zoe@wire.example.net"]),  # tag and beat together
        ("o'brien", ["liam@example.org"]),
        ("nobody", []),
    ],
)
def test_words_match_by_prefix_across_fields(rt: Runtime, imported: None, query: str, expected: list[str]) -> None:
    """Each search word matches the beginning of a word of the name, address, outlet, beats or tags; all words must match."""
    assert emails(rt, query=query) == expected


def test_filters_and_sorts(rt: Runtime, imported: None) -> None:
    """Region, outlet type, beat, tag and list filters narrow; sort by name, email, outlet."""
    assert emails(rt, region="eu-west") == ["clemence@lequotidien.example.com", "liam@example.org"]
    assert emails(rt, outlet_type="wire") == ["zoe@wire.example.net"]
    assert emails(rt, beat="business", tag="vip") == ["zoe@wire.example.net"]
    assert emails(rt, list_slug="press") == emails(rt)
    assert emails(rt, list_slug="nope") == []
    assert emails(rt) == [  # by last name
        "zoe@wire.example.net",
        "clemence@lequotidien.example.com",
        "liam@example.org",
        "dana@harborledger.example.com",
    ]
    assert emails(rt, sort="outlet")[0] == "zoe@wire.example.net"  # "Example Wire"
    assert emails(rt, sort="email")[0] == "clemence@lequotidien.example.com"


@pytest.mark.parametrize("cap", [1, 5000])
def test_keyset_pages_cover_everything_once_whatever_drives(
    rt: Runtime, imported: None, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of one row, by each sort, walk every match once, driven by the sort index or by the rarest condition."""
    monkeypatch.setattr(costs, "DRIVE_CAP", cap)
    for sort in contact_search.SORTS:
        for filters in (ContactFilters(), ContactFilters(query="e"), ContactFilters(region="eu-west")):
            seen: list[str] = []
            cursor = None
            with transaction(rt.sessions) as s:
                while True:
                    page = contact_page(s, filters, sort=sort, cursor=cursor, limit=1)
                    seen.extend(r.email for r in page.rows)
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                whole = [r.email for r in contact_page(s, filters, sort=sort, limit=50).rows]
            assert seen == whole and len(set(seen)) == len(seen)


def test_edit_and_erasure_keep_the_index(rt: Runtime, imported: None) -> None:
    """An edited outlet is found by its new words at once; an erased contact is found by nothing."""
    with transaction(rt.sessions) as s:
        contact_edit.edit_contact(
            s, "dana@harborledger.example.com", {"outlet": "Bay Courier"}, actor="pat", now=FIXED_NOW
        )
    assert emails(rt, query="courier") == ["dana@harborledger.example.com"]
    assert emails(rt, query="ledger") == []
    with transaction(rt.sessions) as s:
        erasure.erase_contact(s, "dana@harborledger.example.com", actor="pat", now=FIXED_NOW)
    assert emails(rt, query="dana") == [] and "dana@harborledger.example.com" not in emails(rt)


# --- the access paths of a page (issue 15: 1,000,000 contacts) ------------------------------

WORDS = ["an", "ana", "ben", "times", "post", "be", "tag-1", "beat-2", "zz", "o"]


@pytest.fixture
def crowd(rt: Runtime) -> None:
    """120 fictional contacts with repeated names, outlets, types, regions, beats, tags,
    update times and two lists: ties in every sort key, every filter value shared."""
    rng = random.Random(15)
    with transaction(rt.sessions) as s:
        lists = [
            s.execute(
                insert(MailingList).values(slug=slug, name=slug, created_at=FIXED_NOW).returning(MailingList.id)
            ).scalar_one()
            for slug in ("l1", "l2")
        ]
        rows: list[dict[str, Any]] = [
            {
                "email": f"person{i:03d}@outlet{i % 7}.example.org",
                "email_hash": email_hash(f"person{i:03d}@outlet{i % 7}.example.org"),
                "first_name": rng.choice(["Ana", "Ben", "Anabel", "Cho"]),
                "last_name": rng.choice(["Post", "Times", "Bell"]),
                "outlet": rng.choice(["The Times", "Daily Post", "Ana Radio", None]),
                "outlet_type": rng.choice(["tv", "print", "radio", None]),
                "region": rng.choice(["r1", "r2", None]),
                "country": rng.choice(["US", "FR"]),
                "language": "en",
                "attributes": {},
                "created_at": FIXED_NOW,
                "updated_at": FIXED_NOW - timedelta(minutes=rng.randint(0, 5)),
            }
            for i in range(120)
        ]
        ids = [r[0] for r in s.execute(insert(Contact).returning(Contact.id), rows)]
        s.execute(
            insert(ContactBeat),
            [{"contact_id": c, "beat": b} for c in ids for b in rng.sample(["beat-1", "beat-2", "beat-3"], 2)],
        )
        s.execute(insert(ContactTag), [{"contact_id": c, "tag": rng.choice(["tag-1", "tag-2"])} for c in ids[::2]])
        s.execute(
            insert(ListMember),
            [{"list_id": lists[c % 2], "contact_id": c, "added_at": FIXED_NOW} for c in ids if c % 3],
        )
        contact_search.reindex_contacts(s, ids)


def random_filters(rng: random.Random) -> ContactFilters:
    return ContactFilters(
        query=" ".join(rng.sample(WORDS, rng.choice([0, 0, 1, 1, 2]))),
        list_slug=rng.choice(["", "", "l1", "l2"]),
        outlet_type=rng.choice(["", "", "tv", "print"]),
        beat=rng.choice(["", "", "beat-1"]),
        tag=rng.choice(["", "", "tag-2"]),
        region=rng.choice(["", "", "r1"]),
        country=rng.choice(["", "", "", "FR"]),
    )


def plans(filters: ContactFilters) -> list[str | None]:
    """Every access path a page of ``filters`` may take, and None (the planner's choice)."""
    out: list[str | None] = [None, "sort"]
    out += [f"word {w}" for w in query_words(filters.query)]
    out += [f"sort in {f}" for f in contact_search.FACETS if getattr(filters, f)]
    sets = [
        name for name, value in (("list", filters.list_slug), ("beat", filters.beat), ("tag", filters.tag)) if value
    ]
    out += sets
    if len(sets) + len(query_words(filters.query)) >= 2:
        out.append(contact_search.INTERSECT)
    return out


def walk(rt: Runtime, filters: ContactFilters, sort: str, plan: str | None, size: int) -> list[int]:
    ids: list[int] = []
    cursor = None
    with transaction(rt.sessions) as s:
        while True:
            page = contact_page(s, filters, sort=sort, cursor=cursor, limit=size, plan=plan)
            assert plan is None or page.driver == plan
            ids.extend(r.id for r in page.rows)
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor


def test_every_access_path_pages_like_the_plain_walk(rt: Runtime, crowd: None) -> None:
    """Random filter combinations, every sort, every access path: the same contacts, pages of 7 as of 200."""
    rng = random.Random(1015)
    for _ in range(12):
        filters = random_filters(rng)
        for sort in contact_search.SORTS:
            whole = walk(rt, filters, sort, "sort", 200)
            assert len(set(whole)) == len(whole)
            for plan in plans(filters):
                assert walk(rt, filters, sort, plan, 7) == whole, (filters, sort, plan)


def brute_force(rt: Runtime, filters: ContactFilters, sort: str) -> list[int]:
    """The ids of the live contacts matching ``filters``, found without the search index:
    every contact read with its beats, tags and lists, its words computed, each filter
    tested in Python; in ``sort`` order where Python orders as both databases do (by the
    update time, newest first), else by id."""
    with transaction(rt.sessions) as s:
        beats: dict[int, list[str]] = {}
        tags: dict[int, list[str]] = {}
        lists: dict[int, set[str]] = {}
        for cid, beat in s.execute(select(ContactBeat.contact_id, ContactBeat.beat)):
            beats.setdefault(cid, []).append(beat)
        for cid, tag in s.execute(select(ContactTag.contact_id, ContactTag.tag)):
            tags.setdefault(cid, []).append(tag)
        for cid, slug in s.execute(
            select(ListMember.contact_id, MailingList.slug).join(MailingList, MailingList.id == ListMember.list_id)
        ):
            lists.setdefault(cid, set()).add(slug)
        found: list[tuple[Any, int]] = []
        for c in s.scalars(select(Contact)):
            words = search_terms.contact_terms(
                email=c.email,
                first_name=c.first_name,
                last_name=c.last_name,
                outlet=c.outlet,
                beats=beats.get(c.id, ()),
                tags=tags.get(c.id, ()),
            )
            if c.email is None or not all(any(w.startswith(q) for w in words) for q in query_words(filters.query)):
                continue
            tests = [
                (filters.list_slug, filters.list_slug in lists.get(c.id, set())),
                (filters.beat, filters.beat in beats.get(c.id, [])),
                (filters.tag, filters.tag in tags.get(c.id, [])),
                (filters.outlet_type, c.outlet_type == filters.outlet_type),
                (filters.region, c.region == filters.region),
                (filters.country, c.country == filters.country),
            ]
            if all(ok for wanted, ok in tests if wanted):
                found.append((c.updated_at, c.id))
    if sort == "updated":
        return [cid for _, cid in sorted(found, reverse=True)]
    return sorted(cid for _, cid in found)


def test_every_access_path_finds_what_a_brute_force_filter_finds(rt: Runtime, crowd: None) -> None:
    """Random filter combinations, every sort, every access path (the intersection of two sets too): the contacts a filter in Python finds, each once."""
    rng = random.Random(2015)
    for _ in range(16):
        filters = random_filters(rng)
        for sort in contact_search.SORTS:
            expected = brute_force(rt, filters, sort)
            for plan in plans(filters):
                got = walk(rt, filters, sort, plan, 9)
                assert (got if sort == "updated" else sorted(got)) == expected, (filters, sort, plan)
                assert len(set(got)) == len(got)


def test_a_plan_the_filters_do_not_allow_is_refused(rt: Runtime, crowd: None) -> None:
    """Forcing a path of a filter not given (a list page without a list) is an input error."""
    with transaction(rt.sessions) as s, pytest.raises(InputError, match="plan"):
        contact_page(s, ContactFilters(query="ana"), plan="list")


def cond(name: str, facet: bool = False) -> Condition:
    return Condition(name, ids=None, facet=(Contact.outlet_type, "x") if facet else None)


@pytest.mark.parametrize(
    ("conds", "counts", "expected"),
    [
        ([], [], "sort"),
        ([cond("word ana")], [50_000], "sort"),  # broad: the first 50 rows of 1/20 come quickly
        ([cond("list")], [100], "list"),  # rare: its 100 ids, sorted
        ([cond("word ana"), cond("tag")], [20_000, 10_000], "tag"),  # 10,000 ids < ~90,000 rows walked
        ([cond("word ana"), cond("list")], [20_000, 20_000], "sort"),  # neither set is rare
        ([cond("word ana"), cond("outlet_type", True)], [20_000, 20_000], "sort in outlet_type"),
        (
            [cond("region", True), cond("outlet_type", True), cond("list")],
            [8_000, 9_000, 20_000],
            "sort in region",  # the rarer facet's index; a facet never drives as a set
        ),
        ([cond("tag"), cond("outlet_type", True)], [3_000, 200], "sort in outlet_type"),  # walks <= 200 rows
    ],
)
def test_the_cheaper_plan_is_chosen(conds: list[Condition], counts: list[int], expected: str) -> None:
    """Over 1,000,000 contacts, a page starts from a rare set, else walks the index within the rarest facet, else the sort."""
    assert costs.plan(conds, counts, 1_000_000, 50)[0] == expected


@pytest.mark.parametrize(
    ("conds", "counts", "recount", "expected"),
    [
        # 'ana' and beat-03 (5.5% and 5%): ~18,000 rows walked, or 105,000 entries read, 2,750 fetched
        ([cond("word ana"), cond("beat")], [55_000, 50_000], True, "intersect"),
        ([cond("word ana"), cond("list")], [55_000, 150_000], True, "sort"),  # a third: 2,700 rows walked
        ([cond("word a"), cond("beat")], [150_000, 50_000], True, "sort"),  # almost everyone: ~1,200 rows
        ([cond("word ana"), cond("tag")], [55_000, 10_000], True, "intersect"),  # not 10,000 ids probed
        ([cond("word ana"), cond("tag")], [55_000, 100], False, "tag"),  # a rare set drives alone
        ([cond("word ana"), cond("beat"), cond("outlet_type", True)], [55_000, 50_000, 90_000], True, "intersect"),
        ([cond("word ana"), cond("word times")], [55_000, 150_000], True, "sort"),
    ],
)
def test_two_broad_sets_are_intersected_when_that_reads_less(
    conds: list[Condition], counts: list[int], recount: bool, expected: str
) -> None:
    """Over 1,000,000 contacts, two sets counted again past the first cap start a page from their intersection only when it costs less than the walk."""
    first = [min(n, costs.DRIVE_CAP) for n in counts]
    cost = costs.plan(conds, first, 1_000_000, 50)[1]
    assert costs.worth_counting_on(conds, first, cost) == recount
    cap = costs.intersect_cap(1_000_000, 50)
    assert cap == 223_606
    counted = [min(n, cap) if c.facet is None else f for c, n, f in zip(conds, counts, first, strict=True)]
    counted = counted if recount else first
    assert costs.plan(conds, counted, 1_000_000, 50, cap=cap)[0] == expected


def _sqlite_page_statement(s: Session, page: Callable[[], object], mentions: str) -> tuple[str, Any]:
    """The page's ORDER BY statement (one that names ``mentions``) and its parameters, as SQLite ran it."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        statements.append((statement, params))

    engine = s.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        page()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return next((st, p) for st, p in statements if "ORDER BY" in st and mentions in st)


def _sqlite_page_plan(s: Session, page: Callable[[], object], mentions: str) -> str:
    """SQLite's EXPLAIN QUERY PLAN of the page's ORDER BY statement (one that names ``mentions``)."""
    statement, params = _sqlite_page_statement(s, page, mentions)
    return " | ".join(str(r[-1]) for r in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params))


@pytest.mark.parametrize("sort", contact_search.SORTS)
def test_a_walk_reads_a_contact_only_once_its_probes_pass_on_sqlite(rt: Runtime, crowd: None, sort: str) -> None:
    """SQLite walks a sort index testing a word and a beat from the index's ids, reading a contact's row only after both."""
    with transaction(rt.sessions) as s:
        if s.get_bind().dialect.name != "sqlite":
            pytest.skip("SQLite's program")
        filters = ContactFilters(query="ana", beat="beat-1")
        statement, params = _sqlite_page_statement(s, lambda: contact_page(s, filters, sort=sort, plan="sort"), "")
        program = [(r[1], r[2], r[4]) for r in s.connection().exec_driver_sql(f"EXPLAIN {statement}", params)]
    # the walked index's cursor defers its seek into the contacts table (cursor p3)
    table = next(p3 for op, _, p3 in program if op == "DeferredSeek")
    first_probe = next(n for n, (op, _, _) in enumerate(program) if op == "BeginSubrtn")
    reads = [n for n, (op, cursor, _) in enumerate(program) if op == "Column" and cursor == table]
    assert reads and min(reads) > first_probe, program


@pytest.mark.parametrize("sort", contact_search.SORTS)
def test_a_facet_walk_uses_its_own_index_on_sqlite(rt: Runtime, crowd: None, sort: str) -> None:
    """SQLite walks a (facet, sort key, id) index for a page within an outlet type and a region, sorting nothing."""
    with transaction(rt.sessions) as s:
        if s.get_bind().dialect.name != "sqlite":
            pytest.skip("SQLite's query plan")
        filters = ContactFilters(query="ana", outlet_type="tv", region="r1")
        plan = _sqlite_page_plan(s, lambda: contact_page(s, filters, sort=sort, plan="sort in outlet_type"), "")
    key = {"name": "sort_name", "email": "email", "outlet": "sort_outlet", "updated": "updated_at"}[sort]
    walked = (f"ix_contacts_outlet_type_{key}", f"ix_contacts_region_{key}")  # either facet's
    assert any(index in plan for index in walked) and "TEMP B-TREE" not in plan, plan


def test_an_intersection_reads_two_indexes_and_fetches_by_id_on_sqlite(rt: Runtime, crowd: None) -> None:
    """SQLite intersects a word's and a beat's ids from their covering indexes and fetches only those contacts by id."""
    with transaction(rt.sessions) as s:
        if s.get_bind().dialect.name != "sqlite":
            pytest.skip("SQLite's query plan")
        filters = ContactFilters(query="ana", beat="beat-1")
        plan = _sqlite_page_plan(
            s, lambda: contact_page(s, filters, sort="outlet", plan=contact_search.INTERSECT), "contact_terms"
        )
    assert "SEARCH contacts USING INTEGER PRIMARY KEY" in plan and "SCAN contacts" not in plan, plan
    assert (
        "COVERING INDEX ix_contact_beats_beat_contact" in plan
        # contact_terms is WITHOUT ROWID (migration 0019): its primary key is the table
        and "contact_terms USING PRIMARY KEY (term>? AND term<?)" in plan
    ), plan


@pytest.mark.parametrize("words", ["ana", "an", "o", "ana ben"])
def test_sets_counted_further_are_counted_exactly(
    rt: Runtime, crowd: None, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny first cap, the sets that reached it are counted again to the end, but one guessed past the second cap; a facet keeps its count."""
    monkeypatch.setattr(costs, "DRIVE_CAP", 3)
    with transaction(rt.sessions) as s:
        conds = conditions(s, ContactFilters(query=words, beat="beat-1", tag="tag-2", region="r1"))
        first, reach, total = costs.capped_counts(s, conds, 3)
        exact, _, _ = costs.capped_counts(s, conds, 10**9)
        further = costs.counted_further(s, conds, first, first, 10**9)
        beat = next(i for i, c in enumerate(conds) if c.name == "beat")
        guessed = [10**9 if i == beat else n for i, n in enumerate(first)]
        spared = costs.counted_further(s, conds, first, guessed, 10**9)
    assert further[:-1] == exact[:-1] and further[-1] == first[-1] == 3  # the region is a facet
    assert all(0 < r <= total for r in reach[:-1])
    # the beat, guessed past the cap, is not counted again
    assert spared == [10**9 if i == beat else n for i, n in enumerate(further)]


def test_a_guess_from_where_the_first_entries_end_spares_a_count() -> None:
    """The first 20,000 entries of a set ending at id 400,000 of 1,000,000 guess 50,000; a set under the cap, or a facet, keeps its count."""
    conds = [cond("beat"), cond("word ana"), cond("outlet_type", True)]
    assert costs.guessed(conds, [20_000, 7_000, 20_000], [400_000, 990_000, 1_000], 1_000_000) == [
        50_000,
        7_000,
        20_000,
    ]
    assert costs.guessed([cond("list")], [20_000], [20_000], 1_000_000) == [1_000_000]


@pytest.mark.parametrize("trial_share", [1, 10**6])
def test_the_walk_tried_first_pages_like_a_brute_force_filter(
    rt: Runtime, crowd: None, trial_share: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intersections planned on guessed sizes (tiny caps and read cost), the walk tried first for many rows or for one page, then filled, walked on or left for the intersection: each page as a filter in Python finds."""
    monkeypatch.setattr(costs, "DRIVE_CAP", 2)
    monkeypatch.setattr(costs, "READ_COST", 0.0001)
    monkeypatch.setattr(costs, "TRIAL_SHARE", trial_share)
    statements: list[tuple[str, bool]] = []  # (path, bounded) of each page statement
    real = paths.page_query

    def recorded(*args: Any) -> Any:
        statements.append((args[4], len(args) > 10 and args[10] is not None))
        return real(*args)

    monkeypatch.setattr(paths, "page_query", recorded)
    rng = random.Random(3015)
    outcomes: set[str] = set()
    for _ in range(10):
        filters = random_filters(rng)
        for sort in contact_search.SORTS:
            ids: list[int] = []
            cursor = None
            with transaction(rt.sessions) as s:
                while True:
                    statements.clear()
                    page = contact_page(s, filters, sort=sort, cursor=cursor, limit=5)
                    if statements and statements[0][1]:  # a walk tried first
                        then = "filled" if len(statements) == 1 else statements[1][0]
                        outcomes.add("walked on" if then.startswith("sort") else then)
                    ids.extend(r.id for r in page.rows)
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
            assert (ids if sort == "updated" else sorted(ids)) == brute_force(rt, filters, sort), (filters, sort)
    assert outcomes, "no walk was tried first"
    if rt.engine.dialect.name == "sqlite":
        # PostgreSQL's collation orders the crowd's names otherwise, so its tried walks
        # meet other densities (there every one left for the intersection); which way a
        # density goes is pinned by the test below, every page's rows by brute force above
        assert "walked on" in outcomes, outcomes


def test_a_walk_tried_first_goes_on_at_the_density_it_met() -> None:
    """'a' (132,499 entries) and beat-03 (50,201) at 1,000,000, planned as a walk of ~7,500 rows: a tried walk that met 2 matches in 562 rows goes on (~14,000 left, the intersection ~16,000); one that met none leaves for the intersection."""
    conds = [cond("word a"), cond("beat")]
    counted = [132_499, 50_201]
    cap = costs.intersect_cap(1_000_000, 50)
    path, cost = costs.plan(conds, counted, 1_000_000, 50, cap=cap)
    assert path == "sort" and 7_500 < cost < 7_550
    path, cost = costs.driven(conds, counted, 1_000_000, cap=cap) or ("", 0.0)
    assert path == contact_search.INTERSECT and 15_000 < cost < 16_500
    assert costs.walk_left(50, 2, 562) < cost < costs.walk_left(50, 0, 562)
    assert costs.walk_left(50, 50, 1_000) == pytest.approx(20)
