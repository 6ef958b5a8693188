"""Two workers planning at once under the cadence cap (PostgreSQL): the second planner waits
for the first's commit, so it counts the first's rows and nobody is queued twice."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.runtime import Runtime
from mailer.store import deliveries as delivery_store
from mailer.store import planned
from mailer.store.planned import Cap
from mailer.store.tables import Segment
from tests.support.engine import Variant, add_contacts, approved_release, deliveries


def _plan(rt: Runtime, release_id: int, cap: Cap) -> None:
    with rt.sessions() as session, session.begin():
        planned.lock_planning(session)
        _insert(session, rt, release_id, cap)


def _insert(session: Session, rt: Runtime, release_id: int, cap: Cap) -> None:
    segment_id = session.scalar(select(Segment.id).where(Segment.slug == "press-all"))
    assert segment_id is not None
    delivery_store.plan_segment(
        session,
        release_id=release_id,
        segment_id=segment_id,
        rule="list:press",
        scopes=("*",),
        message_id_domain="mail.example.com",
        now=rt.clock(),
        cap=cap,
    )


def test_second_planner_waits_and_counts_the_first(pg_rt: Runtime, tmp_path: Path) -> None:
    """Planner 1 holds the planning lock with its rows uncommitted; planner 2 blocks on the lock,
    then (after planner 1 commits) caps everyone planner 1 queued."""
    rt = pg_rt
    emails = [f"j{i:02d}@example.com" for i in range(20)]
    add_contacts(rt, tmp_path, emails)
    first = approved_release(rt, [Variant("press-all", "list:press")])
    second = approved_release(rt, [Variant("press-all", "list:press")])
    cap = Cap(1, rt.clock() - timedelta(hours=24), "cadence cap: 1 per 24h")
    with rt.sessions() as session, session.begin():
        planned.lock_planning(session)
        _insert(session, rt, first, cap)
        other = threading.Thread(target=_plan, args=(rt, second, cap))
        other.start()
        time.sleep(0.5)
        assert other.is_alive()  # waiting for the planning lock
    other.join(timeout=30)
    assert not other.is_alive()
    assert {r.status for r in deliveries(rt, first).values()} == {"queued"}
    assert {r.status for r in deliveries(rt, second).values()} == {"capped"}
