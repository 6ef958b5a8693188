"""`mailer run` as a long-running process: it sends what is due and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.runtime import Runtime
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
from tests.support.faultsmtp import FaultSMTPServer

pytestmark = pytest.mark.slow


def test_run_sends_due_release_and_stops_on_sigterm(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """A running worker picks up an approved release, sends it, finishes it, and exits 0 on SIGTERM."""
    ert = engine_runtime(rt, smtp.port, Clock(datetime.now(UTC)))
    add_contacts(ert, tmp_path, [f"r{i}@example.com" for i in range(30)])
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "run"],
        env=worker_env(ert, smtp.port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert smtp.wait_for_accepted(30, timeout=60), "the worker did not send the release"
        deadline = time.monotonic() + 30
        while release_status(ert, rid) != "sent" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    assert release_status(ert, rid) == "sent"
    assert {r.status for r in deliveries(ert, rid).values()} == {"sent"}
    assert smtp.duplicates() == []
