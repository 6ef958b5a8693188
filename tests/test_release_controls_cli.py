"""Staff controls from the command line while a release is being sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime, release_status
from faultsmtp import FaultSMTPServer, running_fault_server
from typer.testing import CliRunner

from mailer.cli import app
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.pool import SmtpPool


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


def cli(rt: Runtime, *args: str) -> dict[str, object]:
    env = {"MAILER_DATABASE__URL": rt.settings.database.url, "MAILER_USER": "staff@example.com"}
    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


async def test_pause_resume_retry_and_cancel_from_the_cli(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """pause stops claiming, resume goes on, retry re-queues unknown rows, cancel cancels what is left."""
    ert = engine_runtime(rt, smtp.port, Clock(), retry__batch_size=3)
    add_contacts(ert, tmp_path, [f"c{i}@example.com" for i in range(9)])
    smtp.drop_after_data("c0@example.com", count_as_accepted=False, times=None)
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = SmtpPool(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool)
    dispatcher.plan_due()
    await dispatcher.send_batch(rid)
    after_first = len(smtp.accepted)
    assert cli(ert, "releases", "pause", str(rid)) == {"id": rid, "status": "paused"}
    await dispatcher.run_once()
    assert len(smtp.accepted) == after_first and release_status(ert, rid) == "paused"
    cli(ert, "releases", "resume", str(rid))
    await dispatcher.send_batch(rid)
    unknown = [e for e, r in deliveries(ert, rid).items() if r.status == "unknown"]
    assert cli(ert, "releases", "retry", str(rid), "--status", "unknown") == {"id": rid, "requeued": len(unknown)}
    assert cli(ert, "releases", "cancel", str(rid))["status"] == "cancelled"
    await dispatcher.run_once()
    await pool.close()
    statuses = [r.status for r in deliveries(ert, rid).values()]
    assert set(statuses) <= {"sent", "cancelled"}
    # Two batches of three were sent (c0, if among them, dropped: unknown, re-queued, then cancelled).
    assert statuses.count("sent") == len(smtp.accepted) == 6 - len(unknown)
    assert statuses.count("cancelled") == 3 + len(unknown)
    assert smtp.duplicates() == []
    assert release_status(ert, rid) == "cancelled"
