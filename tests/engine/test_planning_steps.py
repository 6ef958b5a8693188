"""Planning in bounded steps (issue 20): a started release is ``planning`` while its rows
are planned a few contacts at a time, each step its own transaction; a crash between or
inside steps loses nothing and plans nobody twice; the rows planned so far are sent
meanwhile; other writers (a one-click unsubscribe) wait at most one step."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from mailer.engine.dispatch import Dispatcher
from mailer.engine.planner import Planner
from mailer.message.tokens import Tokens
from mailer.releases import workflow
from mailer.releases.fence import FENCE_FILE
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.contact_holds import add_hold
from mailer.store.db import transaction
from mailer.store.tables import Contact, Delivery, Release, Segment, Suppression
from mailer.web import create_app
from tests.support.constants import FIXED_NOW
from tests.support.engine import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
    release_status,
    worker_env,
)
from tests.support.fake_transport import FakeTransport

PRESS = [f"p{i:02d}@example.com" for i in range(20)]
#: on both lists: the first segment (desk) must win
DESK = PRESS[3:9]
TWO_SEGMENTS = [Variant("desk-first", "list:desk"), Variant("press-all", "list:press")]


def runtime(rt: Runtime, tmp_path: Path) -> Runtime:
    return engine_runtime(rt, 25, Clock(), smtp__pool_size=1, paths__data_dir=tmp_path / "data")


def planner(ert: Runtime, *, step: int = 4, owner: str = "w1") -> Planner:
    """A planner of ``step`` contacts a step, every step (not adapted to a loaded machine)."""
    worker = Planner(ert, renderer_for(ert.settings), owner=owner, step_contacts=step)
    worker.step_seconds = float("inf")
    return worker


def audience(ert: Runtime, tmp_path: Path) -> int:
    """Twenty contacts on ``press``, six of them also on ``desk``; an approved release to
    desk first, then press. Returns its id."""
    add_contacts(ert, tmp_path, PRESS)
    add_contacts(ert, tmp_path, DESK, list_slug="desk")
    return approved_release(ert, TWO_SEGMENTS)


def check_planned_once(ert: Runtime, release_id: int) -> None:
    """One row per contact, none missing; the desk contacts carry the desk segment."""
    with transaction(ert.sessions) as session:
        rows = session.execute(
            select(Delivery.email, Segment.slug)
            .join(Segment, Segment.id == Delivery.segment_id)
            .where(Delivery.release_id == release_id)
        ).all()
    emails = [email or "" for email, _ in rows]
    assert sorted(emails) == sorted(PRESS), emails
    assert {email: slug for email, slug in rows} == {e: "desk-first" if e in DESK else "press-all" for e in PRESS}


def cursor(ert: Runtime, release_id: int) -> int | None:
    with transaction(ert.sessions) as session:
        release = session.get(Release, release_id)
        assert release is not None
        return release.plan_cursor


def test_start_writes_the_fence_before_any_row_and_plans_in_steps(rt: Runtime, tmp_path: Path) -> None:
    """The start plans no row but writes the fence; each step adds its contacts; the last one makes it sending."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    worker = planner(ert)
    assert worker.start_due() == [rid]
    assert release_status(ert, rid) == "planning" and deliveries(ert, rid) == {}
    assert f" {rid} " in (tmp_path / "data" / FENCE_FILE).read_text()
    sizes = []
    while worker.plan_step(rid):
        sizes.append(len(deliveries(ert, rid)))
        assert release_status(ert, rid) == "planning"
    # at most four contacts a step (fewer when a step was slow: the size adapts)
    steps = [b - a for a, b in zip([0, *sizes], sizes, strict=False)]
    assert sizes[-1] == 20 and all(0 < n <= 4 for n in steps), sizes
    assert release_status(ert, rid) == "sending" and cursor(ert, rid) is None
    check_planned_once(ert, rid)


def test_crash_inside_and_between_steps_then_another_worker_resumes(rt: Runtime, tmp_path: Path) -> None:
    """A step that dies half way is rolled back whole; another worker resumes at the cursor: nobody twice, nobody skipped."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    first = planner(ert)
    first.start_due()
    assert first.plan_step(rid) and first.plan_step(rid)  # 8 contacts planned, then "killed"
    planned_before = {e: r.message_id for e, r in deliveries(ert, rid).items()}
    assert len(planned_before) == 8
    at = cursor(ert, rid)

    def die(session: Session, release_id: int) -> None:
        session.flush()  # the step's rows are written: the kill comes after them
        raise KeyboardInterrupt("killed mid-step")

    first.step_hook = die
    with pytest.raises(KeyboardInterrupt):
        first.plan_step(rid)
    assert len(deliveries(ert, rid)) == 8 and cursor(ert, rid) == at
    second = planner(ert, owner="w2")  # a fresh process: nothing cached
    assert second.plan_steps() >= 3
    check_planned_once(ert, rid)
    after = deliveries(ert, rid)
    assert {e: after[e].message_id for e in planned_before} == planned_before
    assert release_status(ert, rid) == "sending"


@pytest.mark.slow
def test_planner_killed_mid_step_then_resumed(rt: Runtime, tmp_path: Path) -> None:
    """A planning process killed (SIGKILL) inside its third step: the step is gone whole; another worker finishes the plan."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    env = worker_env(ert, 25, MAILER_PATHS__DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.crashplanner", "4", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    assert release_status(ert, rid) == "planning"
    assert len(deliveries(ert, rid)) == 8  # two steps committed, the third died with the process
    assert planner(ert, owner="w2").plan_steps() >= 3
    check_planned_once(ert, rid)
    assert release_status(ert, rid) == "sending"


def test_a_step_run_again_adds_nothing_and_two_workers_cannot_take_one_step(rt: Runtime, tmp_path: Path) -> None:
    """Re-running every step changes no row; the cursor's compare-and-set lets one of two workers take a step."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    worker = planner(ert)
    worker.plan_due()
    before = {e: (r.id, r.message_id, r.segment_id) for e, r in deliveries(ert, rid).items()}
    with transaction(ert.sessions) as session:
        session.execute(update(Release).where(Release.id == rid).values(status="planning", plan_cursor=0))
    assert worker.plan_steps() >= 4
    assert {e: (r.id, r.message_id, r.segment_id) for e, r in deliveries(ert, rid).items()} == before
    assert release_status(ert, rid) == "sending"
    with transaction(ert.sessions) as session:
        session.execute(update(Release).where(Release.id == rid).values(status="planning", plan_cursor=4))
    with transaction(ert.sessions) as session:
        assert release_store.advance_plan_cursor(session, rid, 4, 8)
    with transaction(ert.sessions) as session:
        assert not release_store.advance_plan_cursor(session, rid, 4, 8)


def test_two_workers_planning_at_once_plan_each_contact_once(rt: Runtime, tmp_path: Path) -> None:
    """Two workers (threads, own connections) step the same release at once: every contact once, first segment first."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    first, second = planner(ert, step=1), planner(ert, step=1, owner="w2")
    first.start_due()
    done: list[int] = []
    threads = [threading.Thread(target=lambda w=w: done.append(w.plan_steps())) for w in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(done) == 20, done  # twenty one-contact steps (and a last empty one), each taken once
    check_planned_once(ert, rid)
    assert release_status(ert, rid) == "sending"


async def test_sending_starts_before_planning_ends(rt: Runtime, tmp_path: Path) -> None:
    """Rows of a planning release are claimed and sent; it is not finished until its last step."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    fake = FakeTransport()
    dispatcher = Dispatcher(ert, fake)
    dispatcher.planner.step_contacts = 4
    dispatcher.planner.step_seconds = float("inf")
    assert dispatcher.start_due() == [rid]
    assert dispatcher.planner.plan_step(rid)
    assert await dispatcher.drain() == 4
    assert len(fake.sent) == 4 and release_status(ert, rid) == "planning"
    assert dispatcher.finish_releases() == []
    assert release_status(ert, rid) == "planning"
    assert await dispatcher.plan_steps() >= 3
    assert release_status(ert, rid) == "sending"
    await dispatcher.run_once()
    assert release_status(ert, rid) == "sent"
    assert sorted(s.recipient for s in fake.sent) == sorted(PRESS)
    check_planned_once(ert, rid)


def test_pause_and_cancel_while_planning(rt: Runtime, tmp_path: Path) -> None:
    """Paused mid-planning: planning goes on, resume makes it sending; cancelled: planned no further, its rows cancelled."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    worker = planner(ert)
    worker.start_due()
    worker.plan_step(rid)
    with transaction(ert.sessions) as session:
        workflow.pause(session, rid, actor="staff@example.com", now=FIXED_NOW)
    worker.plan_steps()
    assert release_status(ert, rid) == "paused" and cursor(ert, rid) is None
    check_planned_once(ert, rid)
    with transaction(ert.sessions) as session:
        workflow.resume(session, rid, actor="staff@example.com", now=FIXED_NOW)
    assert release_status(ert, rid) == "sending"

    other = approved_release(ert, [Variant("press-all", "list:press")])
    worker.start_due()
    worker.plan_step(other)
    with transaction(ert.sessions) as session:
        workflow.pause(session, other, actor="staff@example.com", now=FIXED_NOW)
    with transaction(ert.sessions) as session:
        workflow.resume(session, other, actor="staff@example.com", now=FIXED_NOW)
    assert release_status(ert, other) == "planning"  # steps left: it goes on planning
    with transaction(ert.sessions) as session:
        cancelled = workflow.cancel(session, other, actor="staff@example.com", now=FIXED_NOW)
    assert cancelled.was_sending and cancelled.pending == 4
    assert not worker.plan_step(other)
    assert {r.status for r in deliveries(ert, other).values()} == {"cancelled"}
    assert len(deliveries(ert, other)) == 4


def test_one_click_unsubscribe_waits_one_step_not_the_whole_planning(rt: Runtime, tmp_path: Path) -> None:
    """SQLite, a planner whose every step holds the write lock 0.4 s over ~6 s: each one-click POST answers within 1.5 s."""
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("the write lock is SQLite's")
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    worker = planner(ert, step=1)
    worker.start_due()
    while len(deliveries(ert, rid)) < 4:
        worker.plan_step(rid)  # four rows to unsubscribe from
    targets = [r.id for r in deliveries(ert, rid).values()]
    worker.step_hook = lambda session, release_id: time.sleep(0.4)
    failed: list[BaseException] = []

    def plan() -> None:
        try:
            worker.plan_steps()
        except BaseException as exc:  # shown by the assertion below
            failed.append(exc)

    planning = threading.Thread(target=plan)
    tokens = Tokens.from_settings(ert.settings)
    waits = []
    with TestClient(create_app(ert.settings, clock=lambda: FIXED_NOW), follow_redirects=False) as web:
        planning.start()
        time.sleep(0.2)
        for delivery_id in targets:
            began = time.monotonic()
            response = web.post(f"/u/{tokens.unsubscribe(delivery_id)}", data={"List-Unsubscribe": "One-Click"})
            waits.append(time.monotonic() - began)
            assert response.status_code == 200, response.text
            time.sleep(0.3)
        still_planning = planning.is_alive()
        planning.join(30)
    assert not failed, failed
    assert still_planning, "the planner finished before the last unsubscribe: make its steps slower"
    assert max(waits) < 1.5, waits
    assert release_status(ert, rid) == "sending"
    with transaction(ert.sessions) as session:
        assert session.scalar(select(Suppression.id).limit(1)) is not None


def test_holds_in_force_are_recorded_by_the_step_that_plans_the_contact(rt: Runtime, tmp_path: Path) -> None:
    """Holds on a contact of the first and of a later step are held when planned; a lifted or ended hold is not."""
    ert = runtime(rt, tmp_path)
    rid = audience(ert, tmp_path)
    now = ert.clock()
    with transaction(ert.sessions) as session:
        by_email = {str(c.email): c.id for c in session.scalars(select(Contact))}
        for email, until in [(PRESS[1], now + timedelta(days=2)), (PRESS[14], now + timedelta(days=2))]:
            add_hold(session, contact_id=by_email[email], until=until, reason="away", reply_id=None, now=now)
        add_hold(
            session, contact_id=by_email[PRESS[2]], until=now - timedelta(hours=1), reason="x", reply_id=None, now=now
        )
        lifted = add_hold(
            session, contact_id=by_email[PRESS[15]], until=now + timedelta(days=2), reason="y", reply_id=None, now=now
        )
        session.execute(text("UPDATE contact_holds SET lifted_at = :t WHERE id = :i"), {"t": now, "i": lifted})
    worker = planner(ert)
    worker.plan_due()
    rows = deliveries(ert, rid)
    assert {e for e, r in rows.items() if r.status == "held"} == {PRESS[1], PRESS[14]}
    assert {r.reason for r in rows.values() if r.status == "held"} == {"out_of_office"}
    assert {r.status for e, r in rows.items() if e not in (PRESS[1], PRESS[14])} == {"queued"}
