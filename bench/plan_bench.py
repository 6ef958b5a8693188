"""Planning benchmark: one release planned over N contacts, and a writer beside it.

    .venv/bin/python bench/plan_bench.py [--contacts 1000000] [--backend sqlite|postgres|both]
                                         [--step 20000] [--old-indexes] [--history 5] [--json]

For each backend the bench creates a fresh database (a SQLite file in a temp dir, or
``mailer_planbench_xxx`` on the PostgreSQL at 127.0.0.1:5432 when it answers), bulk-loads
N fictional contacts with SQL (2,000 outlet domains, one contact in 100 suppressed, all on
the list ``press``; not timed), approves a release to ``list:press`` and starts it with
the engine's planner (:meth:`mailer.engine.planner.Planner.start_due`, then
:meth:`~mailer.engine.planner.Planner.plan_steps` to the end), ``--step`` contacts a step
at most (the planner halves a step that held the lock over 0.25 s; ``--step 0``: the
whole release in one step, as planning was before issue 20).
``--old-indexes`` puts back the ``deliveries`` indexes migrations 0016 and 0018 dropped
(the Message-IDs keep their new shape). ``--history K`` first loads K earlier releases
with a ``sent`` row for every contact (not timed), as a database with a history has.

Meanwhile another process writes one row every 50 ms, as a one-click unsubscribe does
(a suppression, and the address's pending deliveries suppressed), each its own
transaction with the configured busy timeout; the bench reports the longest of those
writes and any that failed. Also reported: planning wall time, the longest step, the
planner's CPU time (this process; the database server's own is not in it on
PostgreSQL), and the load average before the run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from mailer import store
from mailer.config import DatabaseSettings, Settings
from mailer.domain.states import ReleaseStatus
from mailer.engine.planner import STEP_CONTACTS, Planner
from mailer.message import Renderer
from mailer.releases.plan import build_send_plan
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store.suppressions import suppress_pending_deliveries
from mailer.store.tables import Approval, Client, Release, ReleaseSegment, Suppression

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DOMAINS = 2000
WRITE_EVERY = 0.05


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str | None]:
    """A fresh, upgraded database URL of ``backend`` (None when PostgreSQL does not answer)."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'plan-{uuid.uuid4().hex[:6]}.db'}"
        _upgrade(url)
        yield url
        return
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"mailer_planbench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        _upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _upgrade(url: str) -> None:
    engine = db.make_engine(DatabaseSettings(url=url))
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings.model_validate(
        {
            "database": {"url": url},
            "secret_key": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "paths": {"templates_dir": str(TEMPLATES), "data_dir": str(data_dir)},
        }
    )


def load(engine: Engine, n: int) -> None:
    """n contacts ``journalistNNNNNNN@outletK.example.org`` on list ``press``; one in 100
    suppressed (every client). SQL in bulk (not timed)."""
    stamp = "2026-11-25 09:00:00.000000"
    t: Any = NOW if engine.dialect.name == "postgresql" else stamp
    with engine.begin() as conn:
        list_id: int = conn.execute(
            text("INSERT INTO lists (slug, name, created_at) VALUES ('press', 'Press', :t) RETURNING id"),
            {"t": t},
        ).scalar_one()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO contacts (email, email_hash, first_name, last_name, attributes, soft_bounce_score,"
                    " soft_bounce_warnings, created_at, updated_at, sort_name, sort_outlet)"
                    " SELECT e, encode(sha256(convert_to(e, 'UTF8')), 'hex'), 'Ana', 'Writer' || i, '{}', 0, 0,"
                    " :t, :t, '', '' FROM (SELECT i, 'journalist' || lpad(i::text, 7, '0') || '@outlet'"
                    f" || (i % {DOMAINS}) || '.example.org' AS e FROM generate_series(1, :n) AS i) AS s"
                ),
                {"n": n, "t": NOW},
            )
    else:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN")
            for start in range(1, n + 1, 100_000):
                cur.executemany(
                    "INSERT INTO contacts (email, email_hash, first_name, last_name, attributes, soft_bounce_score,"
                    " soft_bounce_warnings, created_at, updated_at, sort_name, sort_outlet)"
                    " VALUES (?, ?, 'Ana', ?, '{}', 0, 0, ?, ?, '', '')",
                    [
                        (e, hashlib.sha256(e.encode()).hexdigest(), f"Writer{i}", stamp, stamp)
                        for i in range(start, min(n, start + 99_999) + 1)
                        for e in (f"journalist{i:07d}@outlet{i % DOMAINS}.example.org",)
                    ],
                )
            cur.execute("COMMIT")
        finally:
            raw.close()
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO list_members (list_id, contact_id, added_at) SELECT :l, id, :t FROM contacts"),
            {"l": list_id, "t": t},
        )
        conn.execute(
            text(
                "INSERT INTO suppressions (email, email_hash, scope, reason, source, created_at, subdomains)"
                " SELECT email, email_hash, '*', 'unsubscribed', 'bench', :t, :f FROM contacts WHERE id % 100 = 7"
            ),
            {"t": t, "f": False},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


def approved_release(rt: Runtime) -> int:
    """An approved release of client ``harbor`` to ``list:press``, due now."""
    with db.transaction(rt.sessions) as session:
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
            title="Annual maritime security report",
            subject="Harbor Institute report",
            template="press_release",
            body="The Harbor Institute publishes its annual report.\n",
            extra={"dateline": "PORTSMOUTH, N.H., Nov. 25, 2026"},
            status=ReleaseStatus.APPROVED.value,
            send_at=NOW,
            not_after=NOW + timedelta(days=3650),
            author="author@example.com",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(release)
        session.flush()
        segment = store.save_segment(session, "press-all", "list:press", description=None, now=NOW)
        session.add(ReleaseSegment(release_id=release.id, segment_id=segment.id, position=0))
        session.flush()
        plan = build_send_plan(session, release.id, Renderer(TEMPLATES), rt.settings)
        release.content_hash = plan.content_hash
        session.add(
            Approval(
                release_id=release.id, approver="approver@example.com", content_hash=plan.content_hash, approved_at=NOW
            )
        )
        return release.id


def writer(url: str, stop: Event, ready: Event, out: Pipe) -> None:
    """Another process: one unsubscribe-like write every 50 ms until ``stop``; sends back
    each write's duration (seconds) and the errors."""
    engine = db.make_engine(DatabaseSettings(url=url))
    factory = db.session_factory(engine)
    waits: list[float] = []
    errors: list[str] = []
    ready.set()
    i = 0
    while not stop.is_set():
        i += 1
        hashed = hashlib.sha256(f"writer{i}@example.net".encode()).hexdigest()
        began = time.perf_counter()
        try:
            with db.transaction(factory) as session:
                _unsubscribe(session, hashed, i)
        except Exception as exc:  # reported, not raised: the bench counts them
            errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
        waits.append(time.perf_counter() - began)
        time.sleep(WRITE_EVERY)
    engine.dispose()
    out.send((waits, errors))


def _unsubscribe(session: Session, hashed: str, i: int) -> None:
    session.execute(
        insert(Suppression).values(
            email=f"writer{i}@example.net",
            email_hash=hashed,
            scope="*",
            reason="unsubscribed",
            source="plan bench",
            created_at=datetime.now(UTC),
            subdomains=False,
        )
    )
    # the address's pending rows, as a one-click unsubscribe finds them
    suppress_pending_deliveries(session, hashed, scope="*", reason="unsubscribed", now=datetime.now(UTC))


def history(engine: Engine, releases: int) -> None:
    """``releases`` earlier releases, sent 60 days before (outside the cadence cap's
    window), each with a ``sent`` row for every contact (the planned release's rows then
    go in between theirs in ``ix_deliveries_contact_status``). SQL in bulk (not timed)."""
    t: Any = NOW - timedelta(days=60)
    if engine.dialect.name != "postgresql":
        t = t.strftime("%Y-%m-%d %H:%M:%S.%f")
    domain = "substr(c.email, instr(c.email, '@') + 1)"
    if engine.dialect.name == "postgresql":
        domain = "split_part(c.email, '@', 2)"
    for k in range(releases):
        with engine.begin() as conn:
            release_id: int = conn.execute(
                text(
                    "INSERT INTO releases (client_id, title, subject, template, body, extra, status, author,"
                    " created_at, updated_at) SELECT id, 'Earlier', 'Earlier', 'press_release', 'x', '{}', 'sent',"
                    " 'author@example.com', :t, :t FROM clients WHERE slug = 'harbor' RETURNING id"
                ),
                {"t": t},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO deliveries (release_id, contact_id, email, email_hash, domain, status, message_id,"
                    " attempts, in_data, sent_at, updated_at)"
                    f" SELECT :r, c.id, c.email, c.email_hash, {domain}, 'sent',"
                    " '<h.' || :r || '.' || c.id || '@bench.example.org>', 1, :f, :t, :t FROM contacts c"
                ),
                {"r": release_id, "t": t, "f": False},
            )
        print(f"  history: release {k + 1} of {releases} loaded", file=sys.stderr, flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


def run(backend: str, n: int, step: int, old_indexes: bool, workdir: Path, earlier: int = 0) -> dict[str, Any] | None:
    with database(backend, workdir) as url:
        if url is None:
            print(f"{backend}: PostgreSQL does not answer at 127.0.0.1:5432; skipped", file=sys.stderr)
            return None
        settings = settings_for(url, workdir / f"data-{backend}")
        rt = Runtime.open(settings)
        try:
            t0 = time.perf_counter()
            load(rt.engine, n)
            if old_indexes:
                with rt.engine.begin() as conn:
                    conn.execute(text("CREATE INDEX ix_deliveries_contact_id ON deliveries (contact_id)"))
                    conn.execute(text("CREATE INDEX ix_deliveries_email ON deliveries (email)"))
                    conn.execute(text("CREATE INDEX ix_deliveries_email_hash ON deliveries (email_hash)"))
                    conn.execute(text("CREATE INDEX ix_deliveries_domain_status_id ON deliveries (domain, status, id)"))
            release_id = approved_release(rt)
            history(rt.engine, earlier)
            loaded = time.perf_counter() - t0
            planner = Planner(rt, Renderer(TEMPLATES), owner="bench", step_contacts=step or n + 1)
            longest = [0.0]
            ctx = multiprocessing.get_context("spawn")
            stop, ready = ctx.Event(), ctx.Event()
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=writer, args=(url, stop, ready, send))
            proc.start()
            ready.wait(30)
            time.sleep(0.5)
            load_avg = os.getloadavg()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            began = time.perf_counter()
            started = planner.start_due()
            assert started == [release_id], started
            steps = 0
            while True:
                step_began = time.perf_counter()
                more = planner.plan_step(release_id)
                longest[0] = max(longest[0], time.perf_counter() - step_began)
                steps += 1
                if not more:
                    break
                time.sleep(planner.rest_due())  # as Planner.plan_steps does
            wall = time.perf_counter() - began
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            time.sleep(0.3)
            stop.set()
            waits, errors = receive.recv()
            proc.join(30)
            with db.transaction(rt.sessions) as session:
                counts: dict[str, int] = dict(
                    session.execute(
                        text("SELECT status, count(*) FROM deliveries WHERE release_id = :r GROUP BY status"),
                        {"r": release_id},
                    ).all()
                )
                status: str = session.execute(
                    text("SELECT status FROM releases WHERE id = :r"), {"r": release_id}
                ).scalar_one()
            waits.sort()
            return {
                "backend": backend,
                "contacts": n,
                "step": step or n,
                "old_indexes": old_indexes,
                "earlier_releases": earlier,
                "load_s": round(loaded, 1),
                "plan_s": round(wall, 2),
                "steps": steps,
                "longest_step_s": round(longest[0], 3),
                "planner_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
                "writes": len(waits),
                "longest_write_s": round(waits[-1], 3) if waits else None,
                "p99_write_s": round(waits[int(len(waits) * 0.99)], 3) if waits else None,
                "write_errors": errors[:3],
                "write_error_count": len(errors),
                "rows": counts,
                "release_status": status,
                "loadavg": [round(x, 2) for x in load_avg],
            }
        finally:
            rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--step", type=int, default=STEP_CONTACTS, help="contacts a step at most (0: one step, as before)"
    )
    parser.add_argument("--old-indexes", action="store_true", help="put back the indexes migrations 0016 and 0018 drop")
    parser.add_argument(
        "--history", type=int, default=0, help="earlier releases to every contact (a sent row each) before planning"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    with tempfile.TemporaryDirectory(prefix="planbench-") as tmp:
        for backend in backends:
            result = run(backend, args.contacts, args.step, args.old_indexes, Path(tmp), args.history)
            if result is None:
                continue
            results.append(result)
            if not args.json:
                print(
                    f"{backend}: {args.contacts:,} contacts, step {result['step']:,}: planned in {result['plan_s']} s"
                    f" ({result['steps']} steps, longest {result['longest_step_s']} s, planner CPU"
                    f" {result['planner_cpu_s']} s; {args.history} earlier releases); writer:"
                    f" {result['writes']} writes, longest"
                    f" {result['longest_write_s']} s, p99 {result['p99_write_s']} s, {result['write_error_count']}"
                    f" failed; release {result['release_status']}; rows {result['rows']};"
                    f" load average {result['loadavg']}",
                    flush=True,
                )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
