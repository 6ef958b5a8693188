"""Delivery-log benchmark: filtered keyset pages over 1,000,000 delivery rows, through
the same query the staff page and the API run (:func:`mailer.store.ledger.delivery_log`).

    .venv/bin/python bench/log_bench.py [--rows 1000000] [--backend sqlite|postgres|both]
                                        [--indexes] [--repeat 5]

For each backend the bench creates a fresh database (a SQLite file in a temp dir, or
``mailer_logbench_xxx`` on the PostgreSQL at 127.0.0.1:5432 when it answers), bulk-loads
contacts and deliveries (executemany in chunks on SQLite, COPY on PostgreSQL; not timed
in the results), ANALYZEs, then times each page (median of ``--repeat`` runs) on page 1
and on a deep page (a keyset cursor 90% of the way through the table). Rows: 10 releases
× 100,000 contacts over 200 domains; statuses 90% sent, 4% failed, 2% bounced, 2%
deferred, 2% unknown.

``--indexes`` then adds the domain index that migration 0018 dropped (planning rewrote it
step after step) and times again:

    CREATE INDEX ix_deliveries_domain_status_id ON deliveries (domain, status, id)
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import Engine, func, insert, select, text

from mailer.config import DatabaseSettings
from mailer.domain.states import email_hash
from mailer.store import db
from mailer.store.ledger.log import LogFilter, delivery_log
from mailer.store.ledger.paging import read_only
from mailer.store.tables import Client, Contact, Delivery, Release, Segment

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RELEASES = 10
DOMAINS = [f"outlet{i}.example.com" for i in range(200)]
STATUSES = ["sent"] * 90 + ["failed"] * 4 + ["bounced"] * 2 + ["deferred"] * 2 + ["unknown"] * 2
PROPOSED_INDEXES = ("CREATE INDEX IF NOT EXISTS ix_deliveries_domain_status_id ON deliveries (domain, status, id)",)


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[Engine | None]:
    """A fresh, upgraded database of ``backend`` (None when PostgreSQL does not answer)."""
    if backend == "sqlite":
        engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{workdir / 'log.db'}"))
        db.upgrade(engine)
        yield engine
        engine.dispose()
        return
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"mailer_logbench_{uuid.uuid4().hex[:8]}"
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


def _delivery_rows(
    n: int, contacts: int, segment_ids: list[int], release_ids: list[int]
) -> Iterator[tuple[object, ...]]:
    rng = random.Random(7)
    for i in range(n):
        release_id = release_ids[i // contacts]
        contact = i % contacts
        email = f"j{contact:06d}@{DOMAINS[contact % len(DOMAINS)]}"
        status = rng.choice(STATUSES)
        at = NOW + timedelta(seconds=i // 50)
        yield (
            release_id,
            contact + 1,
            segment_ids[contact % len(segment_ids)],
            email,
            email_hash(email),
            DOMAINS[contact % len(DOMAINS)],
            status,
            f"<{i}.bench@mail.example.com>",
            1,
            False,
            550 if status in ("failed", "bounced") else 250,
            "5.1.1 No such user" if status in ("failed", "bounced") else "2.0.0 OK",
            at if status == "sent" else None,
            at,
        )


DELIVERY_COLUMNS = (
    "release_id", "contact_id", "segment_id", "email", "email_hash", "domain", "status",
    "message_id", "attempts", "in_data", "last_code", "last_reply", "sent_at", "updated_at",
)  # fmt: skip


def fill(engine: Engine, rows: int) -> float:
    """Load clients, segments, releases, contacts and ``rows`` deliveries; returns seconds."""
    started = time.perf_counter()
    contacts = rows // RELEASES
    with engine.begin() as conn:
        conn.execute(
            insert(Client).values(
                slug="bench", name="Bench", from_name="Bench", from_address="press@bench.example.com",
                reply_to=None, postal_address="1 Bench Road", disclosure=None, created_at=NOW,
            )
        )  # fmt: skip
        client_id = conn.scalar(select(Client.id))
        conn.execute(
            insert(Segment),
            [{"slug": f"seg-{i}", "rule": "list:x", "created_at": NOW, "updated_at": NOW} for i in range(3)],
        )
        segment_ids = list(conn.scalars(select(Segment.id).order_by(Segment.id)))
        conn.execute(
            insert(Release),
            [
                {
                    "client_id": client_id, "title": f"Release {i}", "subject": "s", "template": "press_release",
                    "body": "b", "extra": {}, "status": "sent", "author": "a@example.com",
                    "created_at": NOW, "updated_at": NOW,
                }
                for i in range(RELEASES)
            ],
        )  # fmt: skip
        release_ids = list(conn.scalars(select(Release.id).order_by(Release.id)))
        conn.execute(
            insert(Contact),
            [
                {
                    "id": c + 1, "email": f"j{c:06d}@{DOMAINS[c % len(DOMAINS)]}",
                    "email_hash": email_hash(f"j{c:06d}@{DOMAINS[c % len(DOMAINS)]}"),
                    "attributes": {}, "created_at": NOW, "updated_at": NOW,
                }
                for c in range(contacts)
            ],
        )  # fmt: skip
    generated = _delivery_rows(rows, contacts, segment_ids, release_ids)
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY deliveries ({', '.join(DELIVERY_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in generated:
                    copy.write_row(row)
            raw.commit()
            cursor.execute("ANALYZE deliveries")
            raw.commit()
        finally:
            raw.close()
    else:
        placeholders = ", ".join("?" * len(DELIVERY_COLUMNS))
        sql = f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) VALUES ({placeholders})"
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            chunk: list[tuple[object, ...]] = []
            for row in generated:
                chunk.append(
                    tuple(v.replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime) else v for v in row)
                )
                if len(chunk) == 50_000:
                    cursor.executemany(sql, chunk)
                    chunk.clear()
            cursor.executemany(sql, chunk)
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
        finally:
            raw.close()
    return time.perf_counter() - started


def timed(engine: Engine, repeat: int, fn: Callable[..., object]) -> float:
    """Median milliseconds of ``fn(session)`` over ``repeat`` runs, each in a read transaction."""
    sessions = db.session_factory(engine)
    times = []
    for _ in range(repeat):
        with read_only(sessions) as session:
            started = time.perf_counter()
            fn(session)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def scenarios(deep: int) -> list[tuple[str, LogFilter, int | None]]:
    """(name, filters, after) of each page timed."""
    target = DOMAINS[7]
    return [
        ("no filter, page 1", LogFilter(), None),
        ("no filter, deep page", LogFilter(), deep),
        ("status=bounced, page 1", LogFilter(status="bounced"), None),
        ("status=bounced, deep page", LogFilter(status="bounced"), deep),
        (f"status=bounced domain={target}, page 1", LogFilter(status="bounced", domain=target), None),
        (f"status=bounced domain={target}, deep page", LogFilter(status="bounced", domain=target), deep),
        (f"domain={target}, page 1", LogFilter(domain=target), None),
        (f"domain={target}, deep page", LogFilter(domain=target), deep),
        ("domain=nowhere.example (no row), page 1", LogFilter(domain="nowhere.example"), None),
        (f"release=5 domain={target}, page 1", LogFilter(release_id=5, domain=target), None),
        (f"release=5 status=failed domain={target}, page 1",
         LogFilter(release_id=5, status="failed", domain=target), None),
        ("release=5 status=failed, page 1", LogFilter(release_id=5, status="failed"), None),
        ("release=5 status=failed segment=seg-1, page 1",
         LogFilter(release_id=5, status="failed", segment="seg-1"), None),
        ("email exact, page 1", LogFilter(email=f"j000123@{DOMAINS[123]}"), None),
        ("email contains 'j00012', page 1", LogFilter(email="j00012"), None),
        ("since (last 10%), status=failed, page 1", LogFilter(status="failed", since=NOW + timedelta(hours=5)), None),
    ]  # fmt: skip


def run(engine: Engine, backend: str, args: argparse.Namespace) -> None:
    seconds = fill(engine, args.rows)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(Delivery))
        top = conn.scalar(select(func.max(Delivery.id))) or 0
    print(f"\n{backend}: {count:,} deliveries loaded in {seconds:.1f} s")
    deep = int(top * 0.9)
    passes = [("existing indexes", ())]
    if args.indexes:
        passes.append(("with ix_deliveries_domain_status_id", PROPOSED_INDEXES))
    for label, statements in passes:
        if statements:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
                conn.execute(text("ANALYZE"))
        print(f"  {label}:")
        for name, filters, after in scenarios(deep):
            ms = timed(engine, args.repeat, lambda s, f=filters, a=after: delivery_log(s, f, after=a, limit=50))
            print(f"    {name:<50} {ms:9.1f} ms/page")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--indexes", action="store_true", help="also time with the domain index 0018 dropped")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            with database(backend, Path(tmp)) as engine:
                if engine is None:
                    print(f"\n{backend}: not reachable at 127.0.0.1:5432, skipped", file=sys.stderr)
                    continue
                run(engine, backend, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
