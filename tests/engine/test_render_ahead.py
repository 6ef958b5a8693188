"""Render-ahead (issue 20): the engine asks the render process for the rows next in line
together, not one message per connection at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from tests.support.engine import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer

pytestmark = pytest.mark.shared_smtp


async def test_a_batch_is_rendered_in_a_few_requests(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """90 recipients, 2 connections, batches of 45: every row sent once, in a handful of render requests (was ~45)."""
    ert = engine_runtime(rt, smtp.port, Clock(), retry__batch_size=45, smtp__pool_size=2)
    add_contacts(ert, tmp_path, [f"r{i:03d}@example.com" for i in range(90)])
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool)
    try:
        await dispatcher.run_once()
    finally:
        await pool.close()
        dispatcher.renders.worker.close()
    assert {r.status for r in deliveries(ert, rid).values()} == {"sent"}
    assert len(smtp.accepted) == 90 and smtp.duplicates() == []
    assert dispatcher.renders.batches <= 12, dispatcher.renders.batches
    assert dispatcher.sender._ahead == {}  # nothing left over
