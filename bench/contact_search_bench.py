"""Contact-search benchmark: the staff Contacts page over 1,000,000 contacts, through the
same query the page runs (:func:`mailer.store.contact_search.contact_page`).

    .venv/bin/python bench/contact_search_bench.py [--contacts 1000000]
                                                   [--backend sqlite|postgres|both] [--repeat 5] [--json]

For each backend the bench creates a fresh database (a SQLite file in a temp dir, or
``mailer_searchbench_xxx`` on the PostgreSQL at 127.0.0.1:5432 when it answers), loads
fictional contacts in bulk (beats, tags, two lists; search words and sort keys as an
import writes them; the load is not timed in the results), ANALYZEs (VACUUM ANALYZE on
PostgreSQL), then times each page (median of ``--repeat`` runs, each a fresh read-only
transaction) for searches and filters of every selectivity, on page 1 and, for the plain
sorts and the broad combinations in :data:`DEEP`, on a deep page (a cursor 90% of the way
down the sort).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import typing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import Engine, Table, insert, select, text
from sqlalchemy.orm import Session

from mailer.config import DatabaseSettings
from mailer.domain.search_terms import contact_terms, name_key, outlet_key
from mailer.domain.states import email_hash
from mailer.store import db
from mailer.store.bulk import append_rows
from mailer.store.contact_search import ContactFilters, add_terms, contact_page
from mailer.store.ledger.paging import read_only
from mailer.store.tables import Contact, ContactBeat, ContactTag, ContactTerm, ListMember, MailingList

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
#: a broad tag, on every 20th contact (no draw from the seeded generator)
WIDE = "wide"
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
    the tag ``wide`` on 1 in 20; list ``national`` (every third contact) and ``desk`` (100 contacts); surname
    ``Unusualname`` on 25 contacts.

    Written in bulk (:func:`~mailer.store.bulk.append_rows`, ids given), with each loaded
    table's secondary indexes (and on PostgreSQL the search words' primary key) dropped
    first and built again at the end: the rows, sort keys and search words are what an
    import writes (:func:`~mailer.store.contact_search.add_terms`, equal to
    :func:`~mailer.store.contact_search.reindex_contacts`'s), but at 1,000,000 contacts a
    load batch by batch into live indexes took most of an hour on this machine."""
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
    rebuild = _drop_indexes(engine)
    contact_cols = (
        "id", "email", "email_hash", "first_name", "last_name", "outlet", "outlet_type", "region", "country",
        "language", "attributes", "soft_bounce_score", "soft_bounce_warnings", "created_at", "updated_at",
        "sort_name", "sort_outlet",
    )  # fmt: skip
    tables = {t: typing.cast(Table, m.__table__) for t, m in _LOADED.items()}
    for start in range(0, n, BATCH):
        rows = []
        for i in range(start, min(n, start + BATCH)):
            email = f"journalist{i:07d}@outlet{i % 2000}.example.{('com', 'org', 'net')[i % 3]}"
            first = rng.choice(FIRST)
            last = "Unusualname" if i in rare else surname(rng)
            outlet = f"{rng.choice(PREFIXES)} {surname(rng)} {rng.choice(MASTHEADS)}".strip()
            outlet_type, region = rng.choice(TYPES), rng.choice(REGIONS)
            updated = NOW - timedelta(minutes=rng.randint(0, 500_000))
            rows.append(
                (i + 1, email, email_hash(email), first, last, outlet, outlet_type, region, "US", "en", {}, 0, 0, NOW,
                 updated, name_key(first, last), outlet_key(outlet))
            )  # fmt: skip
        ids = [r[0] for r in rows]
        beats = [(cid, b) for cid in ids for b in rng.sample(BEATS, rng.randint(1, 3))]
        tags = [(cid, rng.choice(TAGS)) for cid in ids if rng.random() < 0.2]
        tags += [(cid, WIDE) for cid in ids if (cid - 1) % 20 == 7]
        members = [(national_id, cid, NOW) for cid in ids if (cid - 1) % 3 == 0]
        members += [(desk_id, cid, NOW) for cid in ids if cid - 1 in desk_members]
        labels: dict[int, tuple[list[str], list[str]]] = {cid: ([], []) for cid in ids}
        for cid, b in beats:
            labels[cid][0].append(b)
        for cid, t in tags:
            labels[cid][1].append(t)
        with sessions.begin() as s:
            if engine.dialect.name == "sqlite":  # the search words' primary key stays in memory
                s.execute(text("PRAGMA cache_size = -2000000"))
            append_rows(s, tables["contacts"], contact_cols, rows)
            append_rows(s, tables["contact_beats"], ("contact_id", "beat"), beats)
            append_rows(s, tables["contact_tags"], ("contact_id", "tag"), tags)
            append_rows(s, tables["list_members"], ("list_id", "contact_id", "added_at"), members)
            # (word, contact id) in the primary key's order, as an import batch adds them
            add_terms(
                s,
                sorted(
                    (w, r[0])
                    for r in rows
                    for w in contact_terms(email=r[1], first_name=r[3], last_name=r[4], outlet=r[5],
                                           beats=labels[r[0]][0], tags=labels[r[0]][1])
                ),
            )  # fmt: skip
        if start // BATCH % 10 == 0:
            print(f"  loaded {start + len(rows):,}", file=sys.stderr, flush=True)
    print("  building the indexes", file=sys.stderr, flush=True)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET maintenance_work_mem = '512MB'"))
            conn.execute(text("SELECT setval('contacts_id_seq', (SELECT max(id) FROM contacts))"))
        for statement in rebuild:
            conn.execute(text(statement))
    # VACUUM as autovacuum would after a bulk load: until the visibility map is set,
    # PostgreSQL's index-only scans (the capped counts) visit the heap for every entry.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


#: the tables :func:`load` writes
_LOADED = {
    "contacts": Contact,
    "contact_beats": ContactBeat,
    "contact_tags": ContactTag,
    "list_members": ListMember,
    "contact_terms": ContactTerm,
}


def _drop_indexes(engine: Engine) -> list[str]:
    """Drops the secondary indexes of the loaded tables (and, on PostgreSQL, the search
    words' primary key); returns the statements that build them again."""
    rebuild: list[str] = []
    with engine.begin() as conn:
        for table in _LOADED:
            if engine.dialect.name == "postgresql":
                found = conn.execute(
                    text(
                        "SELECT i.indexname, i.indexdef, c.conname, pg_get_constraintdef(c.oid) FROM pg_indexes i"
                        " LEFT JOIN pg_constraint c ON c.conname = i.indexname WHERE i.tablename = :t"
                    ),
                    {"t": table},
                ).all()
                for name, indexdef, constraint, condef in found:
                    if constraint is None:
                        conn.execute(text(f'DROP INDEX "{name}"'))
                        rebuild.append(indexdef)
                    elif table == "contact_terms" and condef.startswith("PRIMARY KEY"):
                        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
                        rebuild.insert(0, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {condef}')
            else:
                found = conn.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
                    ),
                    {"t": table},
                ).all()
                for name, sql in found:
                    conn.execute(text(f'DROP INDEX "{name}"'))
                    rebuild.append(sql)
    return rebuild


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
    ("search 'ana', tag-05", ContactFilters(query="ana", tag="tag-05"), "name"),
    ("search 'ana', beat-03", ContactFilters(query="ana", beat="beat-03"), "outlet"),
    (
        "list national, region-3, beat-03",
        ContactFilters(list_slug="national", region="region-3", beat="beat-03"),
        "email",
    ),
    (
        "search 'times' in region-3, tv, tag-05",
        ContactFilters(query="times", region="region-3", outlet_type="tv", tag="tag-05"),
        "updated",
    ),
    # a search word with a broad set, no outlet type or region to walk within (issue 15)
    ("search 'ana', beat-03, by name", ContactFilters(query="ana", beat="beat-03"), "name"),
    ("search 'ana', tag wide (5%)", ContactFilters(query="ana", tag="wide"), "name"),
    ("search 'ana', list national", ContactFilters(query="ana", list_slug="national"), "email"),
    ("search 'ana', list desk", ContactFilters(query="ana", list_slug="desk"), "name"),
    ("beat-03, tag wide", ContactFilters(beat="beat-03", tag="wide"), "updated"),
    ("search 'a' (13%), beat-03", ContactFilters(query="a", beat="beat-03"), "outlet"),
    ("search 'example' (everyone), beat-03", ContactFilters(query="example", beat="beat-03"), "outlet"),
    ("search 'al' (7.7%, misestimated by PostgreSQL), beat-03", ContactFilters(query="al", beat="beat-03"), "outlet"),
    ("search 'unusualname', beat-03", ContactFilters(query="unusualname", beat="beat-03"), "outlet"),
    ("search 'zzzz', beat-03", ContactFilters(query="zzzz", beat="beat-03"), "outlet"),
    ("search 'ana times', beat-03", ContactFilters(query="ana times", beat="beat-03"), "name"),
]
#: filtered cases also timed on a page 90% of the way down their sort (a keyset cursor)
DEEP = {
    "search 'ana', beat-03",
    "search 'ana', beat-03, by name",
    "search 'ana', tag wide (5%)",
    "search 'ana', list national",
    "beat-03, tag wide",
    "search 'a' (13%), beat-03",
    "search 'example' (everyone), beat-03",
}


def _backend_cpu_ns(s: Session) -> tuple[int, int]:
    """(PostgreSQL backend pid, its CPU time so far in ns, from /proc/PID/schedstat: the
    server runs on this machine), or (0, 0) on SQLite (it runs in this process)."""
    if s.get_bind().dialect.name != "postgresql":
        return 0, 0
    pid = int(s.scalar(text("SELECT pg_backend_pid()")) or 0)
    return pid, _schedstat_ns(pid)


def _schedstat_ns(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def timed(
    engine: Engine, filters: ContactFilters, sort: str, cursor: str | None, repeat: int
) -> tuple[float, float, int, str]:
    """Median wall ms and median CPU ms (this process + the PostgreSQL backend) of one page."""
    sessions = db.session_factory(engine)
    times, cpus, rows, driver = [], [], 0, ""
    for _ in range(repeat):
        with read_only(sessions) as s:
            pid, backend_before = _backend_cpu_ns(s)
            started, cpu_started = time.perf_counter(), time.thread_time_ns()
            page = contact_page(s, filters, sort=sort, cursor=cursor, limit=50)
            elapsed, cpu = time.perf_counter() - started, time.thread_time_ns() - cpu_started
            if pid:
                cpu += _schedstat_ns(pid) - backend_before
        times.append(elapsed * 1000)
        cpus.append(cpu / 1e6)
        rows, driver = len(page.rows), page.driver
    return statistics.median(times), statistics.median(cpus), rows, driver


def same_as_plain(engine: Engine, filters: ContactFilters, sort: str, cursor: str | None) -> bool:
    """Whether the page and the next one hold the same contacts as the plain walk down the
    sort index finds (not timed)."""
    with read_only(db.session_factory(engine)) as s:
        pages = []
        for plan in (None, "sort"):
            first = contact_page(s, filters, sort=sort, cursor=cursor, limit=50, plan=plan)
            second = contact_page(s, filters, sort=sort, cursor=first.next_cursor, limit=50, plan=plan)
            pages.append([r.id for r in first.rows + (second.rows if first.next_cursor else [])])
    return pages[0] == pages[1]


def deep_cursor(engine: Engine, n: int, sort: str) -> str:
    """The cursor 90% of the way down ``sort`` (found once, not timed)."""
    from mailer.store.contact_search.cursor import encode
    from mailer.store.contact_search.filters import sort_columns

    column, descending = sort_columns(sort)
    order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
    with db.session_factory(engine)() as s:
        row = s.execute(select(column, Contact.id).order_by(*order).offset(int(n * 0.9)).limit(1)).one()
    return encode((row[0], row[1]))


@contextlib.contextmanager
def kept_sqlite(path: Path, n: int) -> Iterator[Engine | None]:
    """The SQLite file ``path``, loaded with ``n`` contacts the first time (``--keep``);
    upgraded each time (a new index of a later migration is built on the kept data)."""
    fresh = not path.exists()
    engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    db.upgrade(engine)
    if fresh:
        load(engine, n)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def kept_postgres(name: str, n: int) -> Iterator[Engine | None]:
    """The PostgreSQL database ``name``, created and loaded with ``n`` contacts the first
    time (``--keep-pg``), upgraded each time, never dropped (drop it by hand when done)."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    with admin:
        fresh = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None
        if fresh:
            admin.execute(f'CREATE DATABASE "{name}"')
    engine = db.make_engine(DatabaseSettings(url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"))
    try:
        db.upgrade(engine)
        if fresh:
            load(engine, n)
        else:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        yield engine
    finally:
        engine.dispose()


def run(
    backend: str, n: int, repeat: int, keep: Path | None = None, keep_pg: str | None = None, check: bool = True
) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        started = time.perf_counter()
        if keep is not None and backend == "sqlite":
            engine = stack.enter_context(kept_sqlite(keep, n))
        elif keep_pg is not None and backend == "postgres":
            engine = stack.enter_context(kept_postgres(keep_pg, n))
        else:
            engine = stack.enter_context(database(backend, Path(tmp)))
            if engine is not None:
                load(engine, n)
        if engine is None:
            print(f"{backend}: PostgreSQL did not answer, skipped", file=sys.stderr)
            return results
        print(f"{backend}: {n:,} contacts ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for label, filters, sort in SCENARIOS:
            pages: list[tuple[object, str | None]] = [(1, None)]
            if not filters.active() or label in DEEP:
                pages.append(("90%", deep_cursor(engine, n, sort)))
            for page, cursor in pages:
                ms, cpu, rows, driver = timed(engine, filters, sort, cursor, repeat)
                results.append(
                    {
                        "backend": backend,
                        "case": label,
                        "page": page,
                        "ms": round(ms, 1),
                        "cpu_ms": round(cpu, 1),
                        "rows": rows,
                        "driver": driver,
                        "same": same_as_plain(engine, filters, sort, cursor) if check else None,
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
    parser.add_argument("--keep-pg", help="PostgreSQL: keep the loaded database of this name and reuse it")
    parser.add_argument(
        "--no-check", action="store_true", help="do not compare each page with the plain walk's (an older contact_page)"
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    check = not args.no_check
    results = [r for b in backends for r in run(b, args.contacts, args.repeat, args.keep, args.keep_pg, check)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"| backend | case | page | ms (median of {args.repeat}) | CPU ms | rows | driven by | same as plain walk |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['backend']} | {r['case']} | {r['page']} | {r['ms']} | {r['cpu_ms']} | {r['rows']} | {r['driver']} "
            f"| {'-' if r['same'] is None else 'yes' if r['same'] else 'NO'} |"
        )
    worst = max((float(str(r["ms"])) for r in results), default=0.0)
    print(f"\nslowest page: {worst:.1f} ms ({'under' if worst < 200 else 'OVER'} 200 ms)")
    if any(r["same"] is False for r in results):
        print("NO: a page differs from the plain walk's")
        sys.exit(1)


if __name__ == "__main__":
    main()
