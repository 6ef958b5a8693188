"""The capture SMTP server behind ``mailer capture`` and ``make demo``."""

from __future__ import annotations

import mailbox
import socket
import threading
from pathlib import Path

import aiosmtplib
import pytest

from mailer.domain.errors import TransportError
from mailer.smtp.capture import CaptureServer, serve_capture


def message(rcpt: str, subject: str) -> bytes:
    return f"From: press@example.org\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nBody\r\n".encode()


async def test_two_messages_land_in_maildir(tmp_path: Path) -> None:
    """Two sent messages become two Maildir files carrying their envelope."""
    maildir = tmp_path / "capture"
    with CaptureServer(maildir) as server:
        assert server.port != 0
        async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as smtp:
            await smtp.sendmail("bounces+a@example.org", ["a@example.com"], message("a", "One"))
            await smtp.sendmail("bounces+b@example.org", ["b@example.com"], message("b", "Two"))
        assert server.count == 2
    box = mailbox.Maildir(maildir, create=False)
    got = sorted((m["Subject"], m["X-Envelope-From"], m["X-Envelope-To"]) for m in box.itervalues())
    assert got == [
        ("One", "<bounces+a@example.org>", "<a@example.com>"),
        ("Two", "<bounces+b@example.org>", "<b@example.com>"),
    ]


async def test_one_file_per_recipient(tmp_path: Path) -> None:
    """A message for two recipients is filed once for each, with its own X-Envelope-To."""
    with CaptureServer(tmp_path / "md") as server:
        async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as smtp:
            await smtp.sendmail("s@example.org", ["a@example.com", "b@example.com"], b"\r\nx\r\n")
        assert server.count == 2
    box = mailbox.Maildir(tmp_path / "md", create=False)
    assert sorted(m["X-Envelope-To"] for m in box.itervalues()) == [
        "<a@example.com>",
        "<b@example.com>",
    ]


def test_taken_port_raises_transport_error(tmp_path: Path) -> None:
    """Starting on a port another socket listens on raises TransportError at once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = CaptureServer(tmp_path / "md", port=port)
        with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
            server.start()
        assert not server.running


def test_restart_after_stop(tmp_path: Path) -> None:
    """A stopped server can start again, and stop is idempotent."""
    server = CaptureServer(tmp_path / "md")
    server.start()
    with pytest.raises(RuntimeError):
        server.start()
    server.stop()
    server.stop()
    server.start()
    assert server.running
    server.stop()


async def test_serve_capture_until_stopped(tmp_path: Path) -> None:
    """serve_capture blocks, reports readiness, captures, and returns when stopped."""
    ready: list[CaptureServer] = []
    listening = threading.Event()
    stop = threading.Event()

    def on_ready(server: CaptureServer) -> None:
        ready.append(server)
        listening.set()

    thread = threading.Thread(
        target=serve_capture,
        args=("127.0.0.1", 0, tmp_path / "md"),
        kwargs={"on_ready": on_ready, "stop": stop},
    )
    thread.start()
    try:
        assert listening.wait(5)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=ready[0].port) as smtp:
            await smtp.sendmail("s@example.org", ["a@example.com"], message("a", "Hi"))
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert ready[0].count == 1 and not ready[0].running
