"""Only a paused release resumes: an approved (scheduled) release is not started and a
finished one is not reopened by `resume`, from the CLI or the staff pages; `retry` still
re-queues rows of a finished release."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import FIXED_NOW
from enginekit import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime, release_status
from fastapi import FastAPI
from faultsmtp import FaultSMTPServer, running_fault_server
from test_staff_routes import app, csrf, seed_release, sign_in  # noqa: F401  (fixture)

from mailer.domain.states import ReleaseStatus, Role
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


def mailer(rt: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m mailer ARGS`` against the test database, as a user runs it."""
    env = {**os.environ, "MAILER_DATABASE__URL": rt.settings.database.url, "MAILER_USER": "staff@example.com"}
    return subprocess.run([sys.executable, "-m", "mailer", *args], capture_output=True, text=True, env=env, timeout=60)


def test_resume_of_a_scheduled_release_is_refused(rt: Runtime, tmp_path: Path) -> None:
    """`resume` on an approved release scheduled for later exits 4 with one line; it stays approved, unplanned."""
    add_contacts(rt, tmp_path, ["ann@example.com", "bob@example.com"])
    rid = approved_release(rt, [Variant("press-all", "list:press")], send_at=FIXED_NOW + timedelta(days=1))
    result = mailer(rt, "releases", "resume", str(rid))
    assert result.returncode == 4
    assert result.stderr.strip() == (
        f"error: release {rid} is approved, not paused: only a paused release resumes; "
        "`mailer run` starts it when its send time comes"
    )
    assert release_status(rt, rid) == "approved" and deliveries(rt, rid) == {}


async def test_resume_of_a_sent_release_is_refused_and_retry_still_works(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """A sent release stays sent under `resume`; `retry --status failed` still re-queues and sends the failed row."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, ["ann@example.com", "later@example.com"])
    smtp.fail_rcpt("later@example.com", "554 5.3.0 Try another day")
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    assert release_status(ert, rid) == "partial"
    refused = mailer(ert, "releases", "resume", str(rid))
    assert refused.returncode == 4
    assert f"release {rid} is partial, not paused" in refused.stderr
    assert f"`mailer releases retry {rid}`" in refused.stderr
    assert release_status(ert, rid) == "partial"
    retried = mailer(ert, "releases", "retry", str(rid), "--status", "failed")
    assert retried.returncode == 0, retried.stderr
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert release_status(ert, rid) == "sent"
    assert smtp.copies_of("later@example.com") == 1 and smtp.copies_of("ann@example.com") == 1


@pytest.mark.parametrize("status", [ReleaseStatus.APPROVED, ReleaseStatus.SENT, ReleaseStatus.SENDING])
def test_web_resume_of_a_release_that_is_not_paused_is_409(
    rt: Runtime,
    app: FastAPI,  # noqa: F811
    tmp_path: Path,
    status: ReleaseStatus,
) -> None:
    """An admin posting resume for an approved, sent or sending release gets 409 with the rule; the state stays."""
    seeded = seed_release(rt, tmp_path, status=status)
    client = sign_in(app, Role.ADMIN)
    response = client.post(f"/releases/{seeded.release_id}/actions/resume", data={"csrftoken": csrf(client)})
    assert response.status_code == 409
    assert f"is {status.value}, not paused: only a paused release resumes" in response.context["error"]  # type: ignore[attr-defined]
    assert release_status(rt, seeded.release_id) == status.value
