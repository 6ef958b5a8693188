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


async def test_two_render_processes_share_a_signed_release(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, dkim_keys: tuple[Path, bytes]
) -> None:
    """render.processes = 2 with a DKIM key: 300 recipients, every row sent once, every message signed and verifying, and both render processes rendered batches."""
    import dkim

    from tests.support.dkim import DOMAIN, SELECTOR, stub_dns

    key_file, record = dkim_keys
    ert = engine_runtime(
        rt,
        smtp.port,
        Clock(),
        render__processes=2,
        retry__batch_size=150,
        dkim__key_file=str(key_file),
        dkim__selector=SELECTOR,
        dkim__domain=DOMAIN,
    )
    add_contacts(ert, tmp_path, [f"p{i:03d}@example.com" for i in range(300)])
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool)
    used: list[int] = []
    for worker in dispatcher.renders.workers:
        run = worker.run

        def counted(jobs, run=run, index=len(used)):  # type: ignore[no-untyped-def]
            used.append(index)
            return run(jobs)

        worker.run = counted  # type: ignore[method-assign]
        used.append(-1)
    used.clear()
    try:
        await dispatcher.run_once()
    finally:
        await pool.close()
        dispatcher.renders.close()
    assert {r.status for r in deliveries(ert, rid).values()} == {"sent"}
    assert len(smtp.accepted) == 300 and smtp.duplicates() == []
    assert all(dkim.verify(raw, dnsfunc=stub_dns(record)) for raw in smtp.raw)
    assert len(dispatcher.renders.workers) == 2 and set(used) == {0, 1}, used
