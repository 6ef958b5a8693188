"""Pause and cancel stop a sending worker within about a second, mid-batch; with the relay
down the worker backs off and logs one line per try, no traceback."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.engine.dispatch import Dispatcher
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store.db import transaction
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

pytestmark = pytest.mark.shared_smtp

EVERYONE = [Variant("press-all", "list:press")]


@pytest.mark.parametrize("action", ["pause", "cancel"])
async def test_pause_or_cancel_stops_the_claimed_batch_within_a_second(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, action: str
) -> None:
    """A worker sending a 200-row batch at 40 msg/s is paused (or cancelled) by staff after 60
    messages: it stops starting rows within about a second and hands the rest back."""
    ert = engine_runtime(rt, smtp.port, Clock(), retry__batch_size=200, smtp__pool_size=2, smtp__rate_per_second=40)
    add_contacts(ert, tmp_path, [f"c{i:03d}@example.com" for i in range(200)])
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    sending = asyncio.create_task(Dispatcher(ert, pool).run_once())
    # past the limiter's first burst (40): from here on 40 msg/s
    assert await asyncio.to_thread(smtp.wait_for_accepted, 60, timeout=30)
    with transaction(ert.sessions) as session:
        if action == "pause":
            workflow.pause(session, rid, actor="staff@example.com", now=ert.clock())
        else:
            workflow.cancel(session, rid, actor="staff@example.com", now=ert.clock())
    stopped_at = time.monotonic()
    at_stop = len(smtp.accepted)
    await sending
    await pool.close()
    assert time.monotonic() - stopped_at < 2.5
    assert len(smtp.accepted) <= at_stop + 55  # about one second at 40 msg/s, and the rows in flight
    rows = deliveries(ert, rid).values()
    left = "queued" if action == "pause" else "cancelled"
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("sent", left)}
    assert counts == {"sent": len(smtp.accepted), left: 200 - len(smtp.accepted)}
    assert release_status(ert, rid) == ("paused" if action == "pause" else "cancelled")


@pytest.mark.slow
def test_relay_down_backs_off_with_one_line_per_try(rt: Runtime, tmp_path: Path) -> None:
    """`mailer run` with nothing listening on the relay port for two tries: a few one-line warnings with a
    growing delay, no traceback, and every row still queued."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    ert = engine_runtime(rt, port, Clock(datetime.now(UTC)))
    add_contacts(ert, tmp_path, [f"d{i}@example.com" for i in range(5)])
    rid = approved_release(ert, EVERYONE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "run"],
        env=worker_env(ert, port, MAILER_SMTP__CONNECT_TIMEOUT="1"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # until the second try (not a fixed 6 s: a loaded machine starts `mailer run` slowly)
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 60
    while sum("relay unavailable" in line for line in lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    proc.stderr.close()
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    tries = [line for line in stderr.splitlines() if "relay unavailable" in line]
    assert 2 <= len(tries) <= 4, stderr
    assert "next try in 1s" in tries[0] and "next try in 2s" in tries[1]
    assert {r.status for r in deliveries(ert, rid).values()} == {"queued"}
