"""Rate limits: messages per second for the process, and per recipient domain."""

from __future__ import annotations

import time
from pathlib import Path

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer


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
