"""Contact-search benchmark: the staff Contacts page over 1,000,000 contacts, through the
same query the page runs (:func:`mailer.store.contact_search.contact_page`).

    .venv/bin/python bench/contact_search_bench.py [--contacts 1000000]
                                                   [--backend sqlite|postgres|both] [--repeat 5] [--json]

For each backend the bench creates a fresh database (a SQLite file in a temp dir, or
``mailer_searchbench_xxx`` on the PostgreSQL at 127.0.0.1:5432 when it answers), loads
fictional contacts in batches (beats, tags, two lists; search words and sort keys written
by the same :func:`~mailer.store.contact_search.reindex_contacts` an import calls; the load
is not timed in the results), ANALYZEs (VACUUM ANALYZE on PostgreSQL), then times each page (median of ``--repeat``
runs, each a fresh read-only transaction) for searches and filters of every selectivity,
on page 1 and, for the plain sorts, on a deep page (a cursor 90% of the way down).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import Engine, insert, select, text

from mailer.config import DatabaseSettings
from mailer.domain.states import email_hash
from mailer.store import db
from mailer.store.contact_search import ContactFilters, contact_page, reindex_contacts
from mailer.store.ledger.paging import read_only
from mailer.store.tables import Contact, ContactBeat, ContactTag, ListMember, MailingList

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dana",
    "Elif",
    "Farid",
    "Gita",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemal",
    "Lea",
    "Malik",
    "Nora",
    "Omar",
    "Pia",
    "Quentin",
    "Rosa",
]
SYLLABLES = [
    "al",
    "be",
    "ca",
    "do",
    "el",
    "fa",
    "gi",
    "ho",
    "in",
    "jo",
    "ka",
    "lu",
    "ma",
    "ne",
    "or",
    "pe",
    "qu",
    "ri",
    "sa",
    "to",
    "ur",
    "va",
    "we",
    "xi",
    "yo",
    "zu",
]
PREFIXES = ["The", "Daily", "Weekly", ""]
MASTHEADS = ["Times", "Post", "Radio", "Review", "Wire"]
BEATS = [f"beat-{i:02d}" for i in range(40)]
TAGS = [f"tag-{i:02d}" for i in range(20)]
REGIONS = [f"region-{i}" for i in range(12)]
TYPES = ["print", "tv", "radio", "online", "wire", "podcast", "newsletter", "magazine", "blog", "trade", "agency"]
BATCH = 10_000


def surname(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).title()


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[Engine | None]:
    """A fresh, upgraded database of ``backend`` (None when PostgreSQL does not answer)."""
    if backend == "sqlite":
        engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{workdir / 'search.db'}"))
        db.upgrade(engine)
        yield engine
        engine.dispose()
        return
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"mailer_searchbench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = db.make_engine(DatabaseSettings(url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"))
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load(engine: Engine, n: int) -> None:
    """n contacts: ``journalistNNNNNNN@outletK.example.*``; 1-3 beats each; a tag on 1 in 5;
    list ``national`` (every third contact) and ``desk`` (100 contacts); surname
    ``Unusualname`` on 25 contacts."""
    rng = random.Random(15)
    sessions = db.session_factory(engine)
    with sessions.begin() as s:
        national_id = s.execute(
            insert(MailingList).values(slug="national", name="National", created_at=NOW).returning(MailingList.id)
        ).scalar_one()
        desk_id = s.execute(
            insert(MailingList).values(slug="desk", name="Desk", created_at=NOW).returning(MailingList.id)
        ).scalar_one()
    rare = set(rng.sample(range(n), 25))
    desk_members = set(rng.sample(range(n), 100))
    for start in range(0, n, BATCH):
        rows = []
        for i in range(start, min(n, start + BATCH)):
            email = f"journalist{i:07d}@outlet{i % 2000}.example.{('com', 'org', 'net')[i % 3]}"
            rows.append(
                {
                    "email": email,
                    "email_hash": email_hash(email),
                    "first_name": rng.choice(FIRST),
                    "last_name": "Unusualname" if i in rare else surname(rng),
                    "outlet": f"{rng.choice(PREFIXES)} {surname(rng)} {rng.choice(MASTHEADS)}".strip(),
                    "outlet_type": rng.choice(TYPES),
                    "region": rng.choice(REGIONS),
                    "country": "US",
                    "language": "en",
                    "attributes": {},
                    "created_at": NOW,
                    "updated_at": NOW - timedelta(minutes=rng.randint(0, 500_000)),
                }
            )
        with sessions.begin() as s:
            ids = [r[0] for r in s.execute(insert(Contact).returning(Contact.id), rows)]
            beats = [{"contact_id": cid, "beat": b} for cid in ids for b in rng.sample(BEATS, rng.randint(1, 3))]
            tags = [{"contact_id": cid, "tag": rng.choice(TAGS)} for cid in ids if rng.random() < 0.2]
            members = [
                {"list_id": national_id, "contact_id": cid, "added_at": NOW}
                for j, cid in enumerate(ids)
                if (start + j) % 3 == 0
            ]
            members += [
                {"list_id": desk_id, "contact_id": cid, "added_at": NOW}
                for j, cid in enumerate(ids)
                if start + j in desk_members
            ]
            s.execute(insert(ContactBeat), beats)
            if tags:
                s.execute(insert(ContactTag), tags)
            s.execute(insert(ListMember), members)
            reindex_contacts(s, ids)
        if start // BATCH % 10 == 0:
            print(f"  loaded {start + len(rows):,}", file=sys.stderr, flush=True)
    # VACUUM as autovacuum would after a bulk load: until the visibility map is set,
    # PostgreSQL's index-only scans (the capped counts) visit the heap for every entry.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


SCENARIOS: list[tuple[str, ContactFilters, str]] = [
    ("everyone, by name", ContactFilters(), "name"),
    ("everyone, by email", ContactFilters(), "email"),
    ("everyone, by outlet", ContactFilters(), "outlet"),
    ("everyone, recently updated", ContactFilters(), "updated"),
    ("search 'ana' (a first name, ~4%)", ContactFilters(query="ana"), "name"),
    ("search 'unusualname' (25 contacts)", ContactFilters(query="unusualname"), "name"),
    ("search 'journalist0999' (1,000 addresses)", ContactFilters(query="journalist0999"), "name"),
    ("search 'times' (outlet word, ~20%)", ContactFilters(query="times"), "name"),
    ("search 'beat-07' (~5%)", ContactFilters(query="beat-07"), "name"),
    ("search 'ana times' (two words)", ContactFilters(query="ana times"), "name"),
    ("search 'zzzz' (nothing)", ContactFilters(query="zzzz"), "name"),
    ("search 'a' (one letter)", ContactFilters(query="a"), "name"),
    ("list national (1/3)", ContactFilters(list_slug="national"), "name"),
    ("list desk (100)", ContactFilters(list_slug="desk"), "name"),
    ("beat-03 filter", ContactFilters(beat="beat-03"), "name"),
    ("tag-05 filter (~1%)", ContactFilters(tag="tag-05"), "email"),
    ("outlet type tv + region-3", ContactFilters(outlet_type="tv", region="region-3"), "name"),
    (
        "search 'ana' in list national, tv",
        ContactFilters(query="ana", list_slug="national", outlet_type="tv"),
        "updated",
    ),
]


def timed(
    engine: Engine, filters: ContactFilters, sort: str, cursor: str | None, repeat: int
) -> tuple[float, int, str]:
    sessions = db.session_factory(engine)
    times, rows, driver = [], 0, ""
    for _ in range(repeat):
        started = time.perf_counter()
        with read_only(sessions) as s:
            page = contact_page(s, filters, sort=sort, cursor=cursor, limit=50)
        times.append((time.perf_counter() - started) * 1000)
        rows, driver = len(page.rows), page.driver
    return statistics.median(times), rows, driver


def deep_cursor(engine: Engine, n: int, sort: str) -> str:
    """The cursor 90% of the way down ``sort`` (found once, not timed)."""
    from mailer.store.contact_search import _cursor, _sort_columns

    column, descending = _sort_columns(sort)
    order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
    with db.session_factory(engine)() as s:
        row = s.execute(select(column, Contact.id).order_by(*order).offset(int(n * 0.9)).limit(1)).one()
    return _cursor((row[0], row[1]))


@contextlib.contextmanager
def kept_sqlite(path: Path, n: int) -> Iterator[Engine | None]:
    """The SQLite file ``path``, loaded with ``n`` contacts the first time (``--keep``)."""
    fresh = not path.exists()
    engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    if fresh:
        db.upgrade(engine)
        load(engine, n)
    try:
        yield engine
    finally:
        engine.dispose()


def run(backend: str, n: int, repeat: int, keep: Path | None = None) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        started = time.perf_counter()
        if keep is not None and backend == "sqlite":
            engine = stack.enter_context(kept_sqlite(keep, n))
        else:
            engine = stack.enter_context(database(backend, Path(tmp)))
            if engine is not None:
                load(engine, n)
        if engine is None:
            print(f"{backend}: PostgreSQL did not answer, skipped", file=sys.stderr)
            return results
        print(f"{backend}: {n:,} contacts ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for label, filters, sort in SCENARIOS:
            ms, rows, driver = timed(engine, filters, sort, None, repeat)
            results.append(
                {"backend": backend, "case": label, "page": 1, "ms": round(ms, 1), "rows": rows, "driver": driver}
            )
            if not filters.active():
                ms, rows, driver = timed(engine, filters, sort, deep_cursor(engine, n, sort), repeat)
                results.append(
                    {
                        "backend": backend,
                        "case": label,
                        "page": "90%",
                        "ms": round(ms, 1),
                        "rows": rows,
                        "driver": driver,
                    }
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, help="SQLite: keep the loaded database in this file and reuse it")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [r for b in backends for r in run(b, args.contacts, args.repeat, args.keep)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"| backend | case | page | ms (median of {args.repeat}) | rows | driven by |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['backend']} | {r['case']} | {r['page']} | {r['ms']} | {r['rows']} | {r['driver']} |")
    worst = max((float(str(r["ms"])) for r in results), default=0.0)
    print(f"\nslowest page: {worst:.1f} ms ({'under' if worst < 200 else 'OVER'} 200 ms)")


if __name__ == "__main__":
    main()
