"""`mailer db backup` of a live SQLite database and its restore; the pg_dump advice on
PostgreSQL; `mailer purge --older-than` of stored raw bounce texts."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import DatabaseSettings
from mailer.domain.errors import InputError
from mailer.ops.backup import backup_sqlite, parse_age, purge
from mailer.runtime import Runtime
from mailer.store import audit, db
from mailer.store.db import transaction
from mailer.store.tables import AuditEntry, DeliveryEvent, InboundMail
from tests.support.constants import FIXED_NOW
from tests.support.web import seed_release


def _entries(rt: Runtime) -> list[int]:
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))


def test_backup_of_a_live_database_restores_consistently(rt: Runtime, tmp_path: Path) -> None:
    """While another thread keeps committing, the backup is a whole, current-schema copy that opens after a restore."""
    target = tmp_path / "backups" / "mailer-copy.db"
    if rt.engine.dialect.name != "sqlite":
        with pytest.raises(InputError, match="pg_dump --format=custom") as refused:
            backup_sqlite(rt.engine, target)
        assert "postgres@" in str(refused.value) and not target.exists()
        return
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            with transaction(rt.sessions) as session:
                audit.record(session, actor="writer", action="test", target=str(n), now=FIXED_NOW)
            n += 1

    writer = threading.Thread(target=keep_writing)
    with transaction(rt.sessions) as session:
        audit.record(session, actor="before", action="test", now=FIXED_NOW)
    writer.start()
    try:
        result = backup_sqlite(rt.engine, target)
    finally:
        stop.set()
        writer.join()
    assert result.path == target and target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(InputError, match="exists"):
        backup_sqlite(rt.engine, target)

    restored = tmp_path / "restored" / "mailer.db"
    restored.parent.mkdir()
    shutil.copyfile(target, restored)
    with sqlite3.connect(restored) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    settings = rt.settings.model_copy(update={"database": DatabaseSettings(url=f"sqlite:///{restored}")})
    copy = Runtime.open(settings)  # requires the schema to be current
    try:
        ids = _entries(copy)
        live = _entries(rt)
    finally:
        copy.close()
    assert ids and ids == live[: len(ids)]  # a prefix of the live rows: nothing torn, nothing from the future
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_purge_empties_old_raw_texts_and_keeps_the_facts(rt: Runtime, tmp_path: Path) -> None:
    """Raw bounce bodies and kept mail older than the age are emptied (a dry run only counts); events stay."""
    seed_release(rt, tmp_path)  # one bounce event with its raw text, at FIXED_NOW
    with transaction(rt.sessions) as session:
        session.add(
            InboundMail(category="staff", raw="old", dedupe_key="k1", received_at=FIXED_NOW - timedelta(days=200))
        )
        session.add(InboundMail(category="staff", raw="new", dedupe_key="k2", received_at=FIXED_NOW + timedelta(50)))
    later = Runtime(rt.settings, rt.engine, rt.sessions, clock=lambda: FIXED_NOW + timedelta(days=100))
    dry = purge(later, parse_age("90d"), actor="ops", dry_run=True)
    assert dry.counts == {"bounce_bodies": 1, "kept_mail": 1}
    done = purge(later, parse_age("90d"), actor="ops")
    assert done.counts == {"bounce_bodies": 1, "kept_mail": 1}
    with transaction(rt.sessions) as session:
        assert session.scalar(select(func.count()).where(DeliveryEvent.raw.is_not(None))) == 0
        assert session.scalar(select(func.count()).select_from(DeliveryEvent)) == 1
        assert list(session.scalars(select(InboundMail.raw).order_by(InboundMail.id))) == [None, "new"]
        assert session.scalar(select(AuditEntry.action)) == "purge"
    assert purge(later, parse_age("90d"), actor="ops").counts == {"bounce_bodies": 0, "kept_mail": 0}


@pytest.mark.parametrize("value", ["90", "0d", "d", "3m", "-1d"])
def test_bad_ages_are_refused(value: str) -> None:
    """Ages are a positive number of h, d or w."""
    with pytest.raises(InputError):
        parse_age(value)


def test_parse_age() -> None:
    """90d, 36h and 2w are understood."""
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("36h") == timedelta(hours=36)
    assert parse_age(" 2w ") == timedelta(weeks=2)


def test_cli_backup_and_purge(env: dict[str, str], rt: Runtime, tmp_path: Path) -> None:
    """`mailer db backup FILE --json` writes the copy; `mailer purge --older-than 90d --json` reports counts."""
    runner = CliRunner()
    if rt.engine.dialect.name == "sqlite":
        made = runner.invoke(app, ["db", "backup", str(tmp_path / "b.db"), "--json"])
        assert made.exit_code == 0, made.output
        assert (tmp_path / "b.db").exists() and db.current_revision(rt.engine)
    purged = runner.invoke(app, ["purge", "--older-than", "90d", "--json"])
    assert purged.exit_code == 0, purged.output
    assert '"emptied": {"bounce_bodies": 0, "kept_mail": 0}' in purged.stdout
