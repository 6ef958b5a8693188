"""Readiness: database, migrations and the heartbeats of the sender and inbound processes."""

from __future__ import annotations

import time
from datetime import timedelta

from mailer.ops import heartbeat
from mailer.ops.health import readiness
from mailer.ops.service import sender_jobs
from mailer.runtime import Runtime
from mailer.store import counters
from mailer.store import heartbeats as heartbeat_store
from mailer.store.db import transaction
from tests.support.constants import FIXED_NOW


def _beat(rt: Runtime, kind: str, age_seconds: float) -> None:
    with transaction(rt.sessions) as session:
        heartbeat_store.beat(
            session,
            name=f"{kind}:test:1",
            kind=kind,
            host="test",
            pid=1,
            now=FIXED_NOW - timedelta(seconds=age_seconds),
        )


def test_not_ready_without_heartbeats(rt: Runtime) -> None:
    """A fresh database with no sender or inbound process running is not ready."""
    result = readiness(rt)
    assert not result.ready
    checks = {c.name: c for c in result.checks}
    assert checks["database"].ok and checks["migrations"].ok
    assert not checks["sender_heartbeat"].ok and not checks["inbound_heartbeat"].ok


def test_ready_with_fresh_heartbeats_and_not_when_the_sender_is_stale(rt: Runtime) -> None:
    """Fresh beats of both kinds make it ready; a sender beat older than the limit does not."""
    _beat(rt, "sender", 10)
    _beat(rt, "inbound", 5)
    assert readiness(rt).ready
    with transaction(rt.sessions) as session:
        heartbeat_store.forget(session, "sender:test:1")
    _beat(rt, "sender", rt.settings.ops.heartbeat_stale_seconds + 1)
    result = readiness(rt)
    assert not result.ready
    stale = {c.name: c for c in result.checks}["sender_heartbeat"]
    assert not stale.ok and "stale" in stale.detail


def test_beat_pushes_counters_and_forget_removes_the_heartbeat(rt: Runtime) -> None:
    """A beat writes the process's heartbeat and adds its counts to the shared rows."""
    counters.take_pending()
    counters.bump("lease_sweeps")
    counters.bump("inbound_messages", kind="bounce")
    heartbeat.beat(rt, "inbound", name="inbound:a:1")
    counters.bump("inbound_messages", 2, kind="bounce")
    heartbeat.beat(rt, "inbound", name="inbound:b:2")
    with transaction(rt.sessions) as session:
        assert heartbeat_store.latest_beats(session) == {"inbound": FIXED_NOW}
        counts = {(name, tuple(labels.items())): value for name, labels, value in counters.all_counts(session)}
    assert counts[("inbound_messages", (("kind", "bounce"),))] == 3
    assert counts[("lease_sweeps", ())] == 1
    heartbeat.forget(rt, "inbound", name="inbound:a:1")
    heartbeat.forget(rt, "inbound", name="inbound:b:2")
    with transaction(rt.sessions) as session:
        assert heartbeat_store.latest_beats(session) == {}


def test_heartbeat_thread_beats_until_stopped(rt: Runtime) -> None:
    """The inbound server's heartbeat thread beats at start and forgets its row when stopped."""
    with heartbeat.HeartbeatThread(rt, "inbound"):
        for _ in range(100):
            with transaction(rt.sessions) as session:
                if "inbound" in heartbeat_store.latest_beats(session):
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("no heartbeat")
    with transaction(rt.sessions) as session:
        assert heartbeat_store.latest_beats(session) == {}


async def test_sender_jobs_beat_as_the_sender(rt: Runtime) -> None:
    """`mailer run`'s extra scheduler job writes a sender heartbeat."""
    (name, seconds, job), _ = sender_jobs(rt)
    assert name == "heartbeat" and seconds == rt.settings.ops.heartbeat_seconds
    await job()
    with transaction(rt.sessions) as session:
        assert heartbeat_store.latest_beats(session) == {"sender": FIXED_NOW}
