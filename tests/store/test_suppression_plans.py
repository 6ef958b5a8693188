"""The suppression check of planning and of claiming reads ``suppressions`` through an
index whatever statistics exist: on SQLite after ``ANALYZE`` taken while every
suppression is an address (all ``domain`` NULL), the domain check used to read every
suppression for every contact (migration 0020_suppressions_domain_partial)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from mailer.config import DatabaseSettings, Settings
from mailer.domain.states import send_scopes
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store import deliveries as delivery_store
from mailer.store import queue as delivery_queue
from mailer.store.db import transaction
from mailer.store.tables import Segment, Suppression
from tests.support.constants import FIXED_NOW, TEMPLATES
from tests.support.engine import Variant, add_contacts, approved_release

EMAILS = [f"writer{i}@outlet{i % 7}.example.org" for i in range(60)]


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on its own SQLite file (ANALYZE's statistics must not reach other tests)."""
    url = f"sqlite:///{tmp_path / 'analyzed.db'}"
    engine = db.make_engine(DatabaseSettings(url=url))
    db.upgrade(engine)
    engine.dispose()
    settings = Settings(
        database=DatabaseSettings(url=url),
        paths={"templates_dir": TEMPLATES, "capture_maildir": tmp_path / "capture", "data_dir": tmp_path / "data"},
    )
    runtime = Runtime.open(settings, clock=lambda: FIXED_NOW)
    try:
        yield runtime
    finally:
        runtime.close()


def _suppression_statements(engine: Engine) -> tuple[list[tuple[str, Any]], Any]:
    """A list that collects every statement run on ``engine`` that reads ``suppressions``."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "FROM suppressions" in statement and statement.lstrip().upper().startswith(("INSERT", "UPDATE", "SELECT")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    return seen, grab


def test_planning_and_claim_search_suppressions_after_analyze_of_address_only_suppressions(
    sqlite_rt: Runtime, tmp_path: Path
) -> None:
    """ANALYZEd with only address suppressions, then a *.domain rule added: planning's and claim's suppression checks SEARCH an index, never SCAN."""
    rt = sqlite_rt
    add_contacts(rt, tmp_path, EMAILS)
    release_id = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as session:
        for contact_email in EMAILS[::3]:
            hashed = session.scalar(text("SELECT email_hash FROM contacts WHERE email = :e"), {"e": contact_email})
            session.add(
                Suppression(
                    email=contact_email,
                    email_hash=hashed,
                    scope="*",
                    reason="unsubscribed",
                    source="t",
                    created_at=FIXED_NOW,
                    subdomains=False,
                )
            )
    with rt.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
        rows = conn.exec_driver_sql("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'suppressions'").all()
        stats: dict[str, str] = {str(idx): str(stat) for idx, stat in rows}
    assert stats, "ANALYZE wrote statistics for suppressions"
    with transaction(rt.sessions) as session:
        # after the statistics: they still say "addresses only"; its domain is no contact's
        session.add(
            Suppression(
                domain="elsewhere.example.net",
                email_hash="d" * 64,
                scope="*",
                reason="manual",
                source="t",
                created_at=FIXED_NOW,
                subdomains=True,
            )
        )
    seen, grab = _suppression_statements(rt.engine)
    try:
        with transaction(rt.sessions) as session:
            segment = session.scalars(select(Segment)).one()
            delivery_store.plan_segment(
                session,
                release_id=release_id,
                segment_id=segment.id,
                rule=segment.rule,
                scopes=send_scopes("harbor"),
                message_id_domain="mail.example.com",
                now=FIXED_NOW,
            )
        with transaction(rt.sessions) as session:
            claimed = delivery_queue.claim_batch(
                session,
                release_id=release_id,
                scopes=send_scopes("harbor"),
                owner="w",
                now=FIXED_NOW,
                lease=timedelta(minutes=5),
                limit=10,
            )
    finally:
        event.remove(rt.engine, "before_cursor_execute", grab)
    assert len(claimed) == 10
    kinds = sorted(statement.lstrip().split()[0].upper() for statement, _ in seen)
    # planning and the claim each first ask whether any domain suppression is in scope
    # (one is), then test the address, @domain, how many *.domain rules, then *.domain by
    # LIKE or by the parent domains (each rule by equality)
    assert kinds == ["INSERT", "SELECT", "SELECT", "UPDATE"], kinds
    expected_reads = {"SELECT": 1, "INSERT": 6, "UPDATE": 6}
    with rt.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE sqlite_schema")  # this connection plans with the statistics above
        for statement, parameters in seen:
            plan = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()]
            reads = [line for line in plan if " suppressions" in line]
            assert len(reads) == expected_reads[statement.lstrip().split()[0].upper()], plan
            assert all(line.startswith("SEARCH suppressions USING") for line in reads), (stats, reads)


@pytest.mark.postgres
def test_postgresql_connections_run_without_jit(pg_rt: Runtime) -> None:
    """mailer's PostgreSQL connections have JIT off (it spent 3.2 s compiling a 5.8 s planning step)."""
    with pg_rt.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
