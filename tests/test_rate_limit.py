"""Rate limits: messages per second for the process, and per recipient domain."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Clock, Variant, add_contacts, approved_release, engine_runtime
from faultsmtp import FaultSMTPServer, running_fault_server

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


async def _send_timed(rt: Runtime) -> float:
    pool = make_transport(rt.settings.smtp)
    started = time.monotonic()
    await Dispatcher(rt, pool).run_once()
    elapsed = time.monotonic() - started
    await pool.close()
    return elapsed


async def test_rate_per_second_spaces_the_messages(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """At 10 messages/s, 16 messages cannot all go out in under half a second (a lower bound only)."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__rate_per_second=10)
    add_contacts(ert, tmp_path, [f"r{i}@example.com" for i in range(16)])
    approved_release(ert, [Variant("press-all", "list:press")])
    assert await _send_timed(ert) >= 0.5
    assert len(smtp.accepted) == 16


async def test_rate_per_domain_holds_back_one_domain(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """At 5 messages/s per domain, 12 messages to one domain take at least a second."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__rate_per_domain=5)
    add_contacts(ert, tmp_path, [f"d{i}@slow.example.com" for i in range(12)])
    approved_release(ert, [Variant("press-all", "list:press")])
    assert await _send_timed(ert) >= 1.0
    assert len(smtp.accepted) == 12
