"""`mailer bounces serve` with replies configured, as a real process: a reply over LMTP is
committed before the 250 and forwarded by the same process; SIGTERM stops both."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.runtime import Runtime
from tests.support.bounces import send_to
from tests.support.constants import REPO
from tests.support.faultsmtp import FaultSMTPServer
from tests.support.replies import DESK, REPLY_DOMAIN, address_of, corpus_reply, replies, reply_runtime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_records_and_forwards_replies(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """`bounces serve` takes reply+TOKEN@ over LMTP, records it before 250, forwards it to the desk, and exits on SIGTERM."""
    rrt = reply_runtime(rt)
    sent = send_to(rrt, "ann.lee@daily.example.com")
    to = address_of(rrt, sent.delivery_id)
    port = _free_port()
    env = {
        **os.environ,
        "MAILER_DATABASE__URL": rt.settings.database.url,
        "MAILER_REPLIES__DOMAIN": REPLY_DOMAIN,
        "MAILER_REPLIES__FORWARD_TO": DESK,
        "MAILER_SMTP__PORT": str(smtp.port),
        "PYTHONPATH": str(REPO),
    }
    env.pop("MAILER_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "bounces", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert f"on 127.0.0.1:{port}" in banner, banner + proc.stderr.read()
        with smtplib.LMTP("127.0.0.1", port) as client:
            assert client.sendmail("ann.lee@daily.example.com", [to], corpus_reply("human-en-gmail.eml", to)) == {}
        assert [r.kind for r in replies(rrt)] == ["human"]
        assert smtp.wait_for_accepted(1, timeout=30)
        assert [a.recipient for a in smtp.accepted] == [DESK]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=40)
    assert proc.returncode == 0, rest
    assert "stopped" in rest
