"""``ix_deliveries_lease`` holds the leased (``sending``) rows only (migration 0021): the
lease queries still read it on SQLite, and the migration's downgrade restores the full
index."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import event, select, text, update

from mailer.config import DatabaseSettings
from mailer.domain.states import DeliveryStatus, send_scopes
from mailer.runtime import Runtime
from mailer.store import db, leases
from mailer.store.db import transaction
from mailer.store.tables import Delivery
from tests.support.constants import FIXED_NOW
from tests.support.conversations import EVERYONE
from tests.support.engine import add_contacts, approved_release, plan_only

LEASE = timedelta(minutes=5)


def _index_sql(conn: Any) -> str:
    return str(conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_deliveries_lease'")).scalar_one())


def test_lease_queries_read_the_partial_index_and_only_sending_rows_are_in_it(rt: Runtime, tmp_path: Path) -> None:
    """SQLite: renewal, hand-back and the sweep (both of its updates) search the partial ix_deliveries_lease."""
    if rt.engine.dialect.name != "sqlite":
        return
    add_contacts(rt, tmp_path, [f"l{i}@example.com" for i in range(5)])
    rid = approved_release(rt, EVERYONE)
    plan_only(rt, rid, scopes=send_scopes("harbor"))
    with transaction(rt.sessions) as s:
        first = s.scalars(select(Delivery.id).where(Delivery.release_id == rid).order_by(Delivery.id)).first()
        s.execute(
            update(Delivery)
            .where(Delivery.id == first)
            .values(status=DeliveryStatus.SENDING.value, lease_owner="w", lease_expires_at=FIXED_NOW - LEASE)
        )
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES"):
            statements.append((statement, params))

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        with transaction(rt.sessions) as s:
            assert leases.renew_leases(s, "w", FIXED_NOW - 2 * LEASE, LEASE) == 1
            assert leases.release_leases(s, "nobody", FIXED_NOW) == 0
            assert leases.sweep_expired_leases(s, FIXED_NOW) == (1, 0)
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    assert len(statements) == 4, statements
    with rt.engine.connect() as conn:
        assert "WHERE status = 'sending'" in _index_sql(conn)
        for statement, params in statements:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
            assert "ix_deliveries_lease" in plan, (statement, plan)


def test_migration_0021_makes_the_lease_index_partial_and_downgrade_restores_it(tmp_path: Path) -> None:
    """Upgrade from 0019: the index holds sending rows only; downgrade: the full (status, lease_expires_at) index."""
    engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'old.db'}"))
    db.upgrade(engine, "0019_import_terms")
    with engine.connect() as conn:
        assert "WHERE" not in _index_sql(conn)
    db.upgrade(engine)
    with engine.connect() as conn:
        assert _index_sql(conn).endswith("WHERE status = 'sending'")
    command.downgrade(db._alembic_config(engine), "0019_import_terms")
    with engine.connect() as conn:
        assert "WHERE" not in _index_sql(conn) and "status, lease_expires_at" in _index_sql(conn)
    engine.dispose()
