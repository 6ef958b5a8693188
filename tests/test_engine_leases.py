"""Leases under a slow relay: renewed on a timer while a worker holds rows, so a second
worker never takes over rows still being sent; a row whose lease was lost is never sent."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from enginekit import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from faultsmtp import FaultSMTPServer, running_fault_server
from sqlalchemy import select, update
from test_crash import worker_env

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store.db import transaction
from mailer.store.tables import Delivery, DeliveryEvent

EVERYONE = [Variant("press-all", "list:press")]


@pytest.fixture(scope="module")
def server() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


@pytest.fixture
def smtp(server: FaultSMTPServer) -> FaultSMTPServer:
    server.reset()
    return server


def in_id_order(rt: Runtime, release_id: int) -> list[str]:
    with transaction(rt.sessions) as session:
        return list(
            session.scalars(select(Delivery.email).where(Delivery.release_id == release_id).order_by(Delivery.id))
        )


def test_slow_relay_and_short_lease_send_no_duplicate(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """The red team's repro: 60 recipients, the relay answers the data of 4 only after 12 s;
    worker A `run --once` with a 6 s lease, a 30 s DATA timeout and batches of 50; at t=9 s
    worker B `run`: every recipient gets exactly one copy (before: 46 of 60 got two)."""
    ert = engine_runtime(rt, smtp.port, Clock(datetime.now(UTC)), retry__journal_dir=tmp_path / "heard")
    emails = [f"slow{i:02d}@example.com" for i in range(60)]
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    Dispatcher(ert, make_transport(ert.settings.smtp)).plan_due()
    for email in in_id_order(ert, rid)[:4]:  # the first rows claimed: every connection stalls at once
        smtp.stall_after_data(email, seconds=12)
    env = worker_env(
        ert,
        smtp.port,
        MAILER_RETRY__LEASE_SECONDS="6",
        MAILER_SMTP__DATA_TIMEOUT="30",
        MAILER_RETRY__BATCH_SIZE="50",
        MAILER_SMTP__POOL_SIZE="4",
    )

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "mailer", "run", *args],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    a = start("--once")
    b: subprocess.Popen[str] | None = None
    try:
        time.sleep(9)
        b = start()
        assert smtp.wait_for_accepted(60, timeout=60)
        _, a_err = a.communicate(timeout=60)
        assert a.returncode == 0, a_err[-2000:]
        time.sleep(2)  # B would send a second copy now, if it had taken any of A's rows
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=30)
    assert smtp.duplicates() == []
    assert sorted(a.recipient for a in smtp.accepted) == sorted(emails)
    assert {r.status for r in deliveries(ert, rid).values()} == {"sent"}
    with transaction(ert.sessions) as session:  # A's leases never expired: B swept nothing
        assert session.scalars(select(DeliveryEvent.kind).where(DeliveryEvent.kind == "unknown")).all() == []


async def test_row_taken_over_during_a_stall_is_never_sent(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """While the worker waits on a slow reply, its other rows are taken over by another worker:
    the in-data mark fails for them, so they are not sent and not recorded by this worker."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=1, retry__batch_size=5)
    add_contacts(ert, tmp_path, [f"t{i}@example.com" for i in range(5)])
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool, owner="worker-a")
    dispatcher.plan_due()
    first, *rest = in_id_order(ert, rid)
    smtp.stall_after_data(first, seconds=1.0)
    sending = asyncio.create_task(dispatcher.send_batch(rid))
    await asyncio.sleep(0.5)
    with transaction(ert.sessions) as session:
        session.execute(
            update(Delivery).where(Delivery.email.in_(rest)).values(lease_owner="worker-b", lease_expires_at=None)
        )
    assert await sending == 5
    await pool.close()
    rows = deliveries(ert, rid)
    assert smtp.copies_of(first) == 1 and rows[first].status == "sent"
    assert [smtp.copies_of(e) for e in rest] == [0, 0, 0, 0]
    assert {(rows[e].status, rows[e].lease_owner, rows[e].attempts) for e in rest} == {("sending", "worker-b", 0)}
