"""Claim benchmark: what one ``claim_batch`` (200 rows) costs at the start, the middle and
the end of a large release, on SQLite and PostgreSQL, with the claim query of issue 20
and (``--old``) the one before it, on the schema each was written for.

    .venv/bin/python bench/claim_bench.py [--rows 1000000] [--backend sqlite|postgres|both]
                                          [--old] [--claims 20] [--wave 0.3] [--deferred 0.05]

For each backend it creates a fresh database (a SQLite file in a temp dir, or
``mailer_claimbench_xxx`` on the PostgreSQL at 127.0.0.1:5432, dropped at the end), and
inserts N fictional contacts and one release of N deliveries directly in SQL (no
planning). ``--wave`` of the rows wait for a later local-hour wave (a not-before in the
future; the rest have none) and ``--deferred`` are deferred with a retry time in the
future: rows a claim must not pick, spread over the release. Then, at 0%, 50% and 99% of
the other rows ``sent`` (the lowest ids first, as a send leaves them; PostgreSQL gets a
VACUUM ANALYZE after each step, as autovacuum would), it times ``--claims`` claims of 200
rows, each rolled back so that every claim sees the same state, and as many runs of the
claim's row selection alone (``select``: the part that grew with the release; the rest
of a claim, the UPDATE of 200 rows, the suppression and hold checks and the read of the
claimed rows, costs the same whatever the release). Reported per claim: wall time
(median and max) and CPU time (this process on SQLite; the server backend's on
PostgreSQL, from /proc, whose 10 ms ticks are summed over all the claims).

With ``--old`` the previous query (one ``OR`` over queued and deferred, ``ORDER BY id``)
is timed too, on the previous indexes (``ix_deliveries_claim`` instead of the two partial
ones, switched in place before each measurement), alternating old and new.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import Engine, Select, String, and_, case, cast, insert, literal, literal_column, or_, select, text
from sqlalchemy.orm import Session

from mailer.config import DatabaseSettings
from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.store import db
from mailer.store import queue as delivery_queue
from mailer.store.tables import Client, Contact, Delivery, Release

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LIMIT = 200
TICK = os.sysconf("SC_CLK_TCK")


def old_due_ids(release_id: int, now: datetime, limit: int) -> Select[int]:
    """The claim's row selection before issue 20 (mailer/store/queue.py at 94edc6d)."""
    return (
        select(Delivery.id)
        .where(
            Delivery.release_id == release_id,
            or_(
                and_(
                    Delivery.status == DeliveryStatus.QUEUED.value,
                    or_(Delivery.not_before.is_(None), Delivery.not_before <= now),
                ),
                and_(Delivery.status == DeliveryStatus.DEFERRED.value, Delivery.next_attempt_at <= now),
            ),
        )
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


NEW_DUE_IDS = delivery_queue._due_ids

OLD_INDEXES = ["CREATE INDEX ix_deliveries_claim ON deliveries (release_id, status, next_attempt_at)"]
NEW_INDEXES = [
    "CREATE INDEX ix_deliveries_due_queued ON deliveries (release_id, not_before, id) WHERE status = 'queued'",
    "CREATE INDEX ix_deliveries_due_deferred ON deliveries (release_id, next_attempt_at, id) WHERE status = 'deferred'",
]


def use_schema(engine: Engine, old: bool) -> None:
    """Switch the claim indexes in place to the old or the new ones (no-op when they are)."""
    with engine.begin() as conn:
        names = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'index'"
                    if engine.dialect.name == "sqlite"
                    else "SELECT indexname FROM pg_indexes WHERE tablename = 'deliveries'"
                )
            )
        }
        want, drop = (OLD_INDEXES, NEW_INDEXES) if old else (NEW_INDEXES, OLD_INDEXES)
        for ddl in drop:
            name = ddl.split()[2]
            if name in names:
                conn.execute(text(f"DROP INDEX {name}"))
        for ddl in want:
            if ddl.split()[2] not in names:
                conn.execute(text(ddl))
    analyze(engine)


def analyze(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE deliveries"))


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh database URL of ``backend``, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="claimbench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'mailer.db'}"
        return
    name = f"mailer_claimbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def numbers(engine: Engine, n: int) -> Select[int]:
    """SELECT n AS i FROM 1..n, in the engine's SQL."""
    if engine.dialect.name == "postgresql":
        return select(text("i")).select_from(text(f"generate_series(1, {n}) AS g(i)"))
    return select(text("i")).select_from(
        text(f"(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) SELECT i FROM g)")
    )


def build(engine: Engine, rows: int, wave: float, deferred: float) -> int:
    """Contacts and one sending release of ``rows`` deliveries; returns the release id.
    Every ``1/wave``-th row waits for a later wave, every ``1/deferred``-th is deferred
    to later (both spread over the release)."""
    t0 = time.monotonic()
    with Session(engine) as session, session.begin():
        client = Client(
            slug="harbor",
            name="Harbor Institute",
            from_name="Harbor Institute Press Office",
            from_address="press@harbor.example.org",
            reply_to="media@harbor.example.org",
            postal_address="12 Quay Street, Portsmouth, NH 03801, USA",
            disclosure="Distributed by Example PR LLP on behalf of the Harbor Institute.",
            created_at=NOW,
        )
        session.add(client)
        session.flush()
        release = Release(
            client_id=client.id,
            title="Claim bench",
            subject="Claim bench",
            template="press_release",
            body="Body",
            status=ReleaseStatus.SENDING.value,
            author="author@example.com",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(release)
        session.flush()
        release_id = release.id
    i = cast(literal_column("i"), String)
    at = literal(NOW, type_=Delivery.updated_at.type)
    with engine.begin() as conn:
        conn.execute(
            insert(Contact).from_select(
                ["email", "email_hash", "first_name", "attributes", "soft_bounce_score", "created_at", "updated_at"],
                select(
                    literal("reporter") + i + literal("@example.com"),
                    literal("h") + i,
                    literal("Reporter"),
                    literal({}, type_=Contact.attributes.type),
                    literal(0),
                    at,
                    at,
                ).select_from(numbers(engine, rows).subquery()),
            )
        )
    print(f"  {rows:,} contacts in {time.monotonic() - t0:.1f} s", flush=True)
    t0 = time.monotonic()
    later = literal(NOW + timedelta(hours=6), type_=Delivery.not_before.type)
    wave_every = round(1 / wave) if wave else 0
    deferred_every = round(1 / deferred) if deferred else 0
    is_wave = text(f"c.id % {wave_every} = 1") if wave_every else literal(False)
    is_deferred = text(f"c.id % {deferred_every} = 0") if deferred_every else literal(False)
    with engine.begin() as conn:
        c = Contact.__table__.alias("c")
        conn.execute(
            insert(Delivery).from_select(
                [
                    "release_id",
                    "contact_id",
                    "email",
                    "email_hash",
                    "domain",
                    "status",
                    "message_id",
                    "attempts",
                    "updated_at",
                    "not_before",
                    "next_attempt_at",
                    "in_data",
                ],
                select(
                    literal(release_id),
                    c.c.id,
                    c.c.email,
                    c.c.email_hash,
                    literal("example.com"),
                    case((is_deferred, literal("deferred")), else_=literal("queued")),
                    literal("<m.") + c.c.email_hash + literal("@example.org>"),
                    literal(0),
                    at,
                    case((is_deferred, None), (is_wave, later), else_=None),
                    case((is_deferred, later), else_=None),
                    literal(False),
                ).order_by(c.c.id),
            )
        )
    print(f"  {rows:,} deliveries in {time.monotonic() - t0:.1f} s", flush=True)
    return release_id


def mark_sent(engine: Engine, release_id: int, fraction: float) -> None:
    """The lowest ids up to ``fraction`` of the release become ``sent`` (the rows not
    for a later wave or retry: those stay as they are)."""
    with engine.begin() as conn:
        first, last = conn.execute(
            text("SELECT min(id), max(id) FROM deliveries WHERE release_id = :r"), {"r": release_id}
        ).one()
        upto = first + int((last - first + 1) * fraction)
        conn.execute(
            text(
                "UPDATE deliveries SET status = 'sent', attempts = 1 WHERE release_id = :r AND id < :upto "
                "AND status = 'queued' AND not_before IS NULL"
            ),
            {"r": release_id, "upto": upto},
        )
    analyze(engine)


def backend_cpu(session: Session) -> Callable[[], float]:
    """A reader of CPU seconds of the process doing this session's SQL work."""
    if session.get_bind().dialect.name == "sqlite":
        return lambda: _own_cpu()
    pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    stat = Path(f"/proc/{pid}/stat")

    def read() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    return read


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Timing:
    walls: list[float]
    cpu: float
    claimed: int

    def line(self) -> str:
        return (
            f"median {statistics.median(self.walls) * 1000:8.2f} ms  max {max(self.walls) * 1000:8.2f} ms  "
            f"cpu {self.cpu / len(self.walls) * 1000:8.2f} ms/claim  ({self.claimed} rows)"
        )


def time_claims(engine: Engine, release_id: int, claims: int, old: bool) -> Timing:
    """``claims`` claims of LIMIT rows, each rolled back."""
    delivery_queue._due_ids = old_due_ids if old else NEW_DUE_IDS  # type: ignore[assignment]
    walls: list[float] = []
    claimed = 0
    with Session(engine) as session:
        cpu = backend_cpu(session)
        session.rollback()
        cpu0 = cpu()
        for _ in range(claims):
            t0 = time.perf_counter()
            rows = delivery_queue.claim_batch(
                session,
                release_id=release_id,
                scopes=["*"],
                owner="bench",
                now=NOW,
                lease=timedelta(minutes=5),
                limit=LIMIT,
            )
            walls.append(time.perf_counter() - t0)
            claimed = len(rows)
            session.rollback()
        used = cpu() - cpu0
    delivery_queue._due_ids = NEW_DUE_IDS
    return Timing(walls, used, claimed)


def time_selects(engine: Engine, release_id: int, claims: int, old: bool) -> Timing:
    """``claims`` runs of the claim's row selection alone (the part that grew with the
    release), each rolled back (on PostgreSQL it locks its rows, FOR UPDATE SKIP LOCKED)."""
    due = (old_due_ids if old else NEW_DUE_IDS)(release_id, NOW, LIMIT)
    walls: list[float] = []
    found = 0
    with Session(engine) as session:
        cpu = backend_cpu(session)
        session.rollback()
        cpu0 = cpu()
        for _ in range(claims):
            t0 = time.perf_counter()
            found = len(session.scalars(due).all())
            walls.append(time.perf_counter() - t0)
            session.rollback()
        used = cpu() - cpu0
    return Timing(walls, used, found)


def explain(engine: Engine, release_id: int, old: bool) -> str:
    """The plan of the claim's row selection."""
    due = (old_due_ids if old else NEW_DUE_IDS)(release_id, NOW, LIMIT)
    compiled = due.compile(engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + str(compiled)).all()
    return "\n".join("    " + " ".join(str(c) for c in r[-1:]) for r in rows)


def run(backend: str, args: argparse.Namespace) -> None:
    print(f"{backend}: {args.rows:,} deliveries, load average {os.getloadavg()[0]:.2f}", flush=True)
    with database(backend) as url:
        engine = db.make_engine(DatabaseSettings(url=url))
        db.upgrade(engine)
        release_id = build(engine, args.rows, args.wave, args.deferred)
        analyze(engine)
        variants = [True, False] if args.old else [False]
        for fraction in (0.0, 0.5, 0.99):
            mark_sent(engine, release_id, fraction)
            for turn in range(args.rounds):
                order = variants if turn % 2 == 0 else variants[::-1]
                for old in order:
                    if args.old:
                        use_schema(engine, old)
                    name = "old" if old else "new"
                    timing = time_claims(engine, release_id, args.claims, old)
                    print(f"  {fraction:4.0%} sent  {name}  claim   {timing.line()}", flush=True)
                    timing = time_selects(engine, release_id, args.claims, old)
                    print(f"  {fraction:4.0%} sent  {name}  select  {timing.line()}", flush=True)
            if args.plans:
                for old in variants:
                    if args.old:
                        use_schema(engine, old)
                    print(f"  plan ({'old' if old else 'new'}):\n{explain(engine, release_id, old)}")
        print(f"  load average after: {os.getloadavg()[0]:.2f}")
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--old", action="store_true", help="time the previous query too (on its indexes)")
    parser.add_argument("--claims", type=int, default=20, help="claims timed per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per point (old/new alternate)")
    parser.add_argument("--wave", type=float, default=0.3, help="share of rows waiting for a later wave")
    parser.add_argument("--deferred", type=float, default=0.05, help="share of rows deferred to later")
    parser.add_argument("--plans", action="store_true", help="print the query plans")
    args = parser.parse_args()
    for backend in ["sqlite", "postgres"] if args.backend == "both" else [args.backend]:
        run(backend, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
