"""The send fence: a restored copy of the database never mails a release a second time
without a person's explicit decision (`releases confirm-late --resend-after-restore`)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from mailer.config import DatabaseSettings, Settings
from mailer.domain.errors import StoreError
from mailer.engine.dispatch import Dispatcher
from mailer.releases.fence import FENCE_FILE
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import db
from mailer.store.db import transaction
from mailer.store.tables import Delivery, DeliveryEvent, MailerMeta, Release
from tests.support.constants import FIXED_NOW, REPO
from tests.support.engine import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
    release_status,
)
from tests.support.faultsmtp import FaultSMTPServer

PEOPLE = ["ann@example.com", "bob@example.net", "cy@example.org"]


def mailer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_restored_sqlite_copy_does_not_mail_anyone_twice(tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Copy the SQLite file while approved, `mailer run`, restore the copy, run again: nobody gets a
    second copy, the release waits with the reason; only --resend-after-restore sends it again."""
    db_file = tmp_path / "db" / "mailer.db"
    db_file.parent.mkdir()
    url = f"sqlite:///{db_file}"
    engine = db.make_engine(DatabaseSettings(url=url))
    db.upgrade(engine)
    engine.dispose()
    settings = Settings(database=DatabaseSettings(url=url), paths={"templates_dir": REPO / "templates"})
    seeding = Runtime.open(settings, clock=lambda: FIXED_NOW)
    add_contacts(seeding, tmp_path, PEOPLE)
    rid = approved_release(seeding, [Variant("press-all", "list:press")])
    seeding.close()
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db_file) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)

    env = {
        "MAILER_DATABASE__URL": url,
        "MAILER_SMTP__HOST": "127.0.0.1",
        "MAILER_SMTP__PORT": str(smtp.port),
        "MAILER_SECRET_KEY": "fence-test-secret-0123456789abcdef0123",
        "MAILER_PATHS__TEMPLATES_DIR": str(REPO / "templates"),
        "MAILER_PATHS__DATA_DIR": str(tmp_path / "data"),
        "MAILER_USER": "staff@example.com",
    }
    first = mailer(env, "run", "--once")
    assert first.returncode == 0, first.stderr
    assert sorted(a.recipient for a in smtp.accepted) == sorted(PEOPLE)
    assert (tmp_path / "data" / FENCE_FILE).exists()

    for suffix in ("-wal", "-shm"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, db_file)  # the restore

    again = mailer(env, "run", "--once")
    assert again.returncode == 0, again.stderr
    assert len(smtp.accepted) == 3 and smtp.duplicates() == []
    assert f"release {rid} waits for a person: already started:" in again.stderr
    shown = json.loads(mailer(env, "releases", "show", str(rid), "--json").stdout)
    assert shown["status"] == "approved"
    assert shown["waiting"].startswith("already started: the send fence")
    assert "it may be a restored copy" in shown["waiting"]
    assert f"mailer releases confirm-late {rid} --resend-after-restore" in shown["waiting"]

    plain = mailer(env, "releases", "confirm-late", str(rid))
    assert plain.returncode == 4
    assert plain.stderr.strip() == (
        f"error: release {rid} may already have been sent (see `mailer releases show {rid}`): "
        "to send it again anyway, add --resend-after-restore"
    )
    assert mailer(env, "run", "--once").returncode == 0 and len(smtp.accepted) == 3  # still waiting

    decided = mailer(env, "releases", "confirm-late", str(rid), "--resend-after-restore")
    assert decided.returncode == 0, decided.stderr
    assert mailer(env, "run", "--once").returncode == 0
    assert [smtp.copies_of(p) for p in PEOPLE] == [2, 2, 2]  # the person's explicit decision


def _restore_to_approved(rt: Runtime, release_id: int) -> None:
    """What restoring a copy taken while the release was approved does to its rows."""
    with transaction(rt.sessions) as session:
        ids = [d.id for d in session.query(Delivery).filter_by(release_id=release_id)]
        session.execute(delete(DeliveryEvent).where(DeliveryEvent.delivery_id.in_(ids)))
        session.execute(delete(Delivery).where(Delivery.release_id == release_id))
        session.execute(
            update(Release)
            .where(Release.id == release_id)
            .values(status="approved", planned_at=None, finished_at=None, hold_reason=None)
        )


async def test_fence_holds_a_rolled_back_release_on_each_backend(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """After a send, the database rolled back to "approved" is held by the fence; another database
    (another identity) with the same release id and content is not."""
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data")
    add_contacts(ert, tmp_path, PEOPLE)
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    assert release_status(ert, rid) == "sent" and len(smtp.accepted) == 3

    _restore_to_approved(ert, rid)
    await Dispatcher(ert, pool).run_once()
    assert len(smtp.accepted) == 3 and deliveries(ert, rid) == {}
    with transaction(ert.sessions) as session:
        release = session.get(Release, rid)
        assert release is not None and release.status == "approved"
        assert (release.hold_reason or "").startswith("already started:")

    # A different database (new identity), same release id and content: not this fence's business.
    _restore_to_approved(ert, rid)
    with transaction(ert.sessions) as session:
        session.execute(delete(MailerMeta))
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert release_status(ert, rid) == "sent" and len(smtp.accepted) == 6


async def test_unwritable_fence_sends_nothing(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """When the fence cannot be written, the release is not started: it stays approved and nobody is mailed."""
    data = tmp_path / "data"
    data.mkdir()
    # Readable as "no fence yet", but nothing can be created through it (tests may run as root).
    (data / FENCE_FILE).symlink_to(tmp_path / "missing-folder" / FENCE_FILE)
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=data)
    add_contacts(ert, tmp_path, PEOPLE)
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    with pytest.raises(StoreError, match=f"send fence {data / FENCE_FILE}: cannot write"):
        await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert release_status(ert, rid) == "approved" and deliveries(ert, rid) == {}
    assert smtp.accepted == []
