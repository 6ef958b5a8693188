"""Red-team holes in the engine: a database copy taken mid-send and restored after the
send finished, sender-side refusals in `mailer report`, and notices about our sender."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from mailer.bounces.policy import BounceOutcome as Outcome
from mailer.cli import app
from mailer.config import DatabaseSettings, Settings
from mailer.domain.errors import WorkflowError
from mailer.domain.states import DeliveryStatus
from mailer.engine.dispatch import Dispatcher
from mailer.releases import holds, workflow
from mailer.releases.fence import FENCE_FILE, SendFence
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import db
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Delivery, Release
from tests.support.bounces import dsn, events, processor, send_to, verp
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
from tests.support.faultsmtp import FaultSMTPServer, running_fault_server

EVERYONE = [Variant("press-all", "list:press")]
PEOPLE = [f"reporter{i:02d}@example.com" for i in range(10)]
STAFF = "staff@example.com"


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


def _release(rt: Runtime, release_id: int) -> Release:
    with transaction(rt.sessions) as session:
        found = session.get(Release, release_id)
        assert found is not None
        return found


def _confirm(rt: Runtime, release_id: int) -> None:
    with transaction(rt.sessions) as session:
        workflow.confirm_start(session, release_id, actor=STAFF, resend_after_restore=True, now=rt.clock())


def _assert_held_mid_send(rt: Runtime, release_id: int) -> None:
    """The release is paused by the fence with a reason naming the decision, and resume refuses it."""
    release = _release(rt, release_id)
    assert release.status == "paused"
    assert (release.hold_reason or "").startswith(holds.FENCE_HOLD)
    assert release.pause_reason == release.hold_reason
    assert "it may be a restored copy" in (release.hold_reason or "")
    assert f"mailer releases confirm-late {release_id} --resend-after-restore" in (release.hold_reason or "")
    with transaction(rt.sessions) as session, pytest.raises(WorkflowError, match="waits for a person: already started"):
        workflow.resume(session, release_id, actor=STAFF, now=rt.clock())


# --- 1. the send fence and a copy taken mid-send ----------------------------------------


async def test_restored_sqlite_copy_taken_mid_send_mails_nobody_twice(tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Copy the SQLite file with half a release sent, finish, restore the copy, run again: no message
    goes out and the release is held; after --resend-after-restore only the rows the copy shows unsent go."""
    db_file = tmp_path / "db" / "mailer.db"
    db_file.parent.mkdir()
    url = f"sqlite:///{db_file}"
    engine = db.make_engine(DatabaseSettings(url=url))
    db.upgrade(engine)
    engine.dispose()
    settings = Settings(database=DatabaseSettings(url=url), paths={"templates_dir": REPO / "templates"})
    clock = Clock()
    ert = engine_runtime(
        Runtime.open(settings, clock=clock), smtp.port, clock, paths__data_dir=tmp_path / "data", retry__batch_size=5
    )
    add_contacts(ert, tmp_path, PEOPLE)
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    first = Dispatcher(ert, pool)
    first.plan_due()
    assert await first.send_batch(rid) == 5
    half = {a.recipient for a in smtp.accepted}
    assert len(half) == 5 and release_status(ert, rid) == "sending"
    backup = tmp_path / "backup.db"
    src, dst = sqlite3.connect(db_file), sqlite3.connect(backup)
    try:
        src.backup(dst)  # the backup, taken mid-send
    finally:
        src.close()
        dst.close()

    await first.run_once()
    assert release_status(ert, rid) == "sent" and len(smtp.accepted) == 10
    ert.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, db_file)  # the restore

    restored = Runtime.open(ert.settings, clock=clock)
    try:
        await Dispatcher(restored, pool).run_once()
        assert len(smtp.accepted) == 10 and smtp.duplicates() == []
        _assert_held_mid_send(restored, rid)
        await Dispatcher(restored, pool).run_once()
        assert len(smtp.accepted) == 10  # still waiting

        _confirm(restored, rid)
        assert release_status(restored, rid) == "sending"
        await Dispatcher(restored, pool).run_once()
        await pool.close()
        # The person's decision: the rows the copy shows unsent go once more, the rest never.
        assert {p: smtp.copies_of(p) for p in PEOPLE} == {p: 1 if p in half else 2 for p in PEOPLE}
        assert release_status(restored, rid) == "sent"
    finally:
        restored.close()


async def test_mid_send_restore_is_held_on_each_backend(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """A database put back (by SQL) to its state with half a release sent is paused by the fence, sends
    nothing; after the person's confirmation exactly the rows it shows unsent go again."""
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data", retry__batch_size=5)
    add_contacts(ert, tmp_path, PEOPLE)
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    first = Dispatcher(ert, pool)
    first.plan_due()
    assert await first.send_batch(rid) == 5
    half = {a.recipient for a in smtp.accepted}
    with transaction(ert.sessions) as session:
        _, sequence = release_store.ledger_state(session, rid)
    unsent = [d.id for d in deliveries(ert, rid).values() if d.status == "queued"]
    assert sequence == 5 and len(unsent) == 5

    await first.run_once()
    assert release_status(ert, rid) == "sent" and len(smtp.accepted) == 10
    with transaction(ert.sessions) as session:  # what restoring the copy does
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(unsent))
            .values(status="queued", sent_at=None, reason=None, first_attempt_at=None, attempts=0)
        )
        session.execute(
            update(Release).where(Release.id == rid).values(status="sending", finished_at=None, ledger_seq=sequence)
        )

    await Dispatcher(ert, pool).run_once()
    assert len(smtp.accepted) == 10
    _assert_held_mid_send(ert, rid)
    assert {d.status for d in deliveries(ert, rid).values()} == {"sent", "queued"}

    env = {"MAILER_DATABASE__URL": ert.settings.database.url, "MAILER_USER": STAFF}
    plain = CliRunner().invoke(app, ["releases", "confirm-late", str(rid)], env=env)
    assert isinstance(plain.exception, WorkflowError) and "add --resend-after-restore" in str(plain.exception)
    decided = CliRunner().invoke(app, ["releases", "confirm-late", str(rid), "--resend-after-restore"], env=env)
    assert decided.exit_code == 0, decided.output
    assert f"confirmed release {rid}: `mailer run` goes on sending it" in decided.output
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert {p: smtp.copies_of(p) for p in PEOPLE} == {p: 1 if p in half else 2 for p in PEOPLE}
    assert release_status(ert, rid) == "sent"


async def test_two_workers_sharing_a_fence_never_raise_a_false_alarm(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Two dispatchers sending one release at once, both writing the same fence, finish it with no hold."""
    people = [f"desk{i:02d}@example.org" for i in range(40)]
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data", retry__batch_size=4)
    add_contacts(ert, tmp_path, people)
    rid = approved_release(ert, EVERYONE)
    pools = [make_transport(ert.settings.smtp) for _ in range(2)]
    workers = [Dispatcher(ert, pool) for pool in pools]
    workers[0].plan_due()
    await asyncio.gather(*(w.drain() for w in workers))
    for w in workers:
        w.release_leases()
    workers[0].finish_releases()
    for pool in pools:
        await pool.close()
    release = _release(ert, rid)
    assert (release.status, release.hold_reason, release.ledger_seq) == ("sent", None, 40)
    assert sorted(a.recipient for a in smtp.accepted) == sorted(people)
    assert all(w.progress.get(rid) for w in workers)  # both really sent
    marks = SendFence(tmp_path / "data").ledger()
    assert max(marks.values()) == 40


async def test_fence_ledger_holds_an_approved_copy_started_elsewhere(rt: Runtime, tmp_path: Path) -> None:
    """An approved release this machine never started, but whose send results it recorded (another
    machine started it), is held at start by the ledger lines alone."""
    data = tmp_path / "data"
    add_contacts(rt, tmp_path, PEOPLE[:2])
    rid = approved_release(rt, EVERYONE)
    with transaction(rt.sessions) as session:
        database_id = release_store.database_identity(session)
    SendFence(data).record_ledger(database_id, rid, None, 2)
    ert = engine_runtime(rt, 9, Clock(), paths__data_dir=data)  # nothing may connect
    assert Dispatcher(ert, make_transport(ert.settings.smtp)).plan_due() == []
    release = _release(ert, rid)
    assert release.status == "approved"
    assert (release.hold_reason or "").startswith("already started: the send fence")
    assert "up to ledger 2, but the database is at 0" in (release.hold_reason or "")


def test_fence_ledger_reads_only_whole_new_lines(tmp_path: Path) -> None:
    """The fence's ledger keeps the highest sequence per (database, release, key), skips start and torn
    lines, and picks up lines appended (or completed) after an earlier read."""
    fence = SendFence(tmp_path)
    assert fence.ledger() == {}
    fence.record("db1", 7, "hash", at=FIXED_NOW, worker="host:1")
    fence.record_ledger("db1", 7, None, 3)
    fence.record_ledger("db1", 7, None, 9)
    fence.record_ledger("db1", 7, "k1", 2)
    with (tmp_path / FENCE_FILE).open("a") as fh:
        fh.write("v2 db1 7 - 1")  # torn: no newline yet
    assert fence.ledger() == {("db1", 7, "-"): 9, ("db1", 7, "k1"): 2}
    with (tmp_path / FENCE_FILE).open("a") as fh:
        fh.write("2\n")  # the line completes as "... 12"
    fence.record_ledger("db2", 7, None, 4)
    assert fence.ledger() == {("db1", 7, "-"): 12, ("db1", 7, "k1"): 2, ("db2", 7, "-"): 4}
    (tmp_path / FENCE_FILE).unlink()
    assert fence.ledger() == {}


# --- 2. sender-side refusals in `mailer report` -------------------------------------


def _report(rt: Runtime, release_id: int) -> dict[str, Any]:
    result = CliRunner().invoke(
        app, ["report", str(release_id), "--json"], env={"MAILER_DATABASE__URL": rt.settings.database.url}
    )
    assert result.exit_code == 0, result.output
    problems: dict[str, Any] = json.loads(result.stdout)["problems"]
    return problems


async def test_report_counts_a_refused_mail_from_before_and_after_resume(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """The relay refuses MAIL FROM with 553 5.1.8: the release pauses and the report shows the sender
    refusal (no hard bounce), also after the fix, a resume and a complete send."""
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data")
    add_contacts(ert, tmp_path, PEOPLE[:3])
    rid = approved_release(ert, EVERYONE)
    smtp.fail_mail("553 5.1.8 <bounces@bounces.example.com>: Sender address rejected: Domain not found", times=None)
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    assert release_status(ert, rid) == "paused" and smtp.accepted == []
    paused = _report(ert, rid)
    assert paused["sender_refusals"] >= 1 and paused["sender_refusal_events"] >= 1
    assert (paused["hard_bounces"], paused["soft_bounces"]) == (0, 0)

    smtp.reset()  # the bounce domain's DNS is fixed
    with transaction(ert.sessions) as session:
        workflow.resume(session, rid, actor=STAFF, now=ert.clock())
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert release_status(ert, rid) == "sent" and len(smtp.accepted) == 3
    done = _report(ert, rid)
    assert done["sender_refusals"] >= 1 and done["sender_refusal_events"] >= 1
    assert (done["hard_bounces"], done["soft_bounces"], done["delivered"]) == (0, 0, 3)


def test_a_disabled_mailbox_counts_as_a_soft_bounce(rt: Runtime) -> None:
    """A notice saying 5.2.1 mailbox disabled bounces the delivery; the report counts it soft, not hard."""
    sent = send_to(rt, "suspended@example.org")
    raw = dsn(
        sent.email,
        to=verp(rt, sent.delivery_id),
        status="5.2.1",
        diagnostic="smtp; 550-5.2.1 The email account that you tried to reach is disabled",
    )
    assert processor(rt).process(raw).outcome is Outcome.BOUNCED
    rows = [d for d in deliveries(rt, _release_id_of(rt, sent.delivery_id)).values()]
    assert [(d.status, d.reason) for d in rows] == [("bounced", "mailbox_disabled")]
    problems = _report(rt, rows[0].release_id)
    assert (problems["hard_bounces"], problems["soft_bounces"]) == (0, 1)


def _release_id_of(rt: Runtime, delivery_id: int) -> int:
    with transaction(rt.sessions) as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row.release_id


# --- 3. a notice about our sender -------------------------------------------------------


async def test_sender_fault_notice_requeues_a_sent_row_for_exactly_one_copy(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """A DSN "Domain of sender address ... does not exist" about a sent row of a sending release: the
    release pauses, the row goes back to the queue (not bounced, nobody scored or suppressed), counts as
    a sender refusal, and after resume that recipient gets exactly one more copy, nobody else any."""
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data", retry__batch_size=2)
    add_contacts(ert, tmp_path, PEOPLE[:3])
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    worker = Dispatcher(ert, pool)
    worker.plan_due()
    assert await worker.send_batch(rid) == 2
    refused = smtp.accepted[0].recipient
    row = deliveries(ert, rid)[refused]
    assert row.status == "sent"

    raw = dsn(
        refused,
        to=verp(ert, row.id),
        status="5.1.8",
        diagnostic="smtp; 553 5.1.8 <bounces@bounces.example.com>... Domain of sender address "
        "bounces@bounces.example.com does not exist",
    )
    result = processor(ert, soft_threshold=1).process(raw)
    assert (result.outcome, result.suppressed) == (Outcome.SENDER_REFUSED, ())
    again = deliveries(ert, rid)[refused]
    assert (again.status, again.reason, again.sent_at) == ("queued", "sender_rejected", None)
    assert [e.kind for e in events(ert, row.id)] == ["sent", "requeued"]
    assert release_status(ert, rid) == "paused"
    problems = _report(ert, rid)
    assert (problems["sender_refusals"], problems["hard_bounces"], problems["soft_bounces"]) == (1, 0, 0)
    assert processor(ert).process(raw).outcome is Outcome.DUPLICATE  # the same notice acts once

    with transaction(ert.sessions) as session:
        workflow.resume(session, rid, actor=STAFF, now=ert.clock())
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert {p: smtp.copies_of(p) for p in PEOPLE[:3]} == {p: 2 if p == refused else 1 for p in PEOPLE[:3]}
    assert release_status(ert, rid) == "sent"


async def test_sender_fault_notice_after_the_release_finished_is_sent_again_by_retry(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """A sender-fault DSN about a row of a finished release puts the row back in the queue and leaves the
    release alone; `retry --status queued` (after the fix) sends that row once more, nobody else."""
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data")
    add_contacts(ert, tmp_path, PEOPLE[:2])
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    refused = PEOPLE[0]
    row = deliveries(ert, rid)[refused]
    raw = dsn(refused, to=verp(ert, row.id), status="5.1.8", diagnostic="smtp; 501 5.1.8 Sender address rejected")
    assert processor(ert).process(raw).outcome is Outcome.SENDER_REFUSED
    assert release_status(ert, rid) == "sent" and deliveries(ert, rid)[refused].status == "queued"

    with transaction(ert.sessions) as session:
        assert workflow.retry(session, rid, [DeliveryStatus.QUEUED], actor=STAFF, now=ert.clock()) == 1
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert (smtp.copies_of(PEOPLE[0]), smtp.copies_of(PEOPLE[1])) == (2, 1)
    assert release_status(ert, rid) == "sent"
