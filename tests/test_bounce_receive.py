"""The LMTP/SMTP bounce receiver against real clients on a real socket."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator

import pytest
from bouncekit import arf, delivery, dsn, events, inbox, processor, send_to, suppressions, verp

from mailer.bounces.process import BounceProcessor, ProcessResult
from mailer.bounces.receive import BounceServer
from mailer.domain.errors import StoreError
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime


@pytest.fixture
def lmtp(rt: Runtime) -> Iterator[BounceServer]:
    with BounceServer(processor(rt), port=0) as server:
        yield server


def test_lmtp_valid_token_is_recorded_before_250(rt: Runtime, lmtp: BounceServer) -> None:
    """A notice to a genuine bounces+TOKEN@ address over LMTP gets 250 only once it is committed."""
    sent = send_to(rt, "gone@example.org")
    to = verp(rt, sent.delivery_id)
    with smtplib.LMTP("127.0.0.1", lmtp.port) as client:
        refused = client.sendmail("", [to], dsn(sent.email, to=to))
        # By the time sendmail returns, the 250 was sent: the row must already be committed.
        assert refused == {}
        assert delivery(rt, sent.delivery_id).status == "bounced"
    assert ("gone@example.org", "*") in suppressions(rt)
    assert [r.outcome.value for r in lmtp.handler.results] == ["bounced"]


def test_receiver_greets_as_itself_with_its_size_limit(lmtp: BounceServer) -> None:
    """The receiver greets as bounces.mailer.invalid and offers SIZE of 50 MB (not the capture server's)."""
    with smtplib.LMTP("127.0.0.1", lmtp.port) as client:
        client.ehlo_or_helo_if_needed()
        assert client.esmtp_features.get("size") == str(50 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", lmtp.port), timeout=10) as sock:
        assert sock.makefile("rb").readline().startswith(b"220 bounces.mailer.invalid")


def test_lmtp_refuses_forged_and_foreign_recipients(rt: Runtime, lmtp: BounceServer) -> None:
    """RCPT for a forged token, another domain or a plain address is refused with 550 5.1.1; nothing is written."""
    sent = send_to(rt, "gone@example.org")
    forged = Tokens("not-our-key").verp_address(sent.delivery_id, "bounces.example.com")
    for to in (
        forged,
        verp(rt, sent.delivery_id).replace("bounces.example.com", "other.example"),
        "someone@bounces.example.com",
        "postmaster@other.example",
    ):
        with smtplib.LMTP("127.0.0.1", lmtp.port) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("", [to], dsn(sent.email, to=to))
            code, message = refused.value.recipients[to]
            assert (code, message[:5]) == (550, b"5.1.1")
    assert events(rt) == []
    assert delivery(rt, sent.delivery_id).status == "sent"


def test_lmtp_answers_once_per_recipient(rt: Runtime, lmtp: BounceServer) -> None:
    """RFC 2033: after DATA with two accepted recipients the server sends two replies, in RCPT order."""
    first, second = send_to(rt, "a@example.org"), send_to(rt, "b@example.org")
    raw = dsn(first.email, to="x@example.org")  # the envelope decides: each recipient is its own delivery
    with socket.create_connection(("127.0.0.1", lmtp.port), timeout=10) as sock:
        reader = sock.makefile("rb")

        def command(line: str) -> bytes:
            sock.sendall(line.encode() + b"\r\n")
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            return reply

        assert reader.readline().startswith(b"220")
        assert command("LHLO test").startswith(b"250")
        assert command("MAIL FROM:<>").startswith(b"250")
        assert command(f"RCPT TO:<{verp(rt, first.delivery_id)}>").startswith(b"250")
        assert command(f"RCPT TO:<{verp(rt, second.delivery_id)}>").startswith(b"250")
        assert command("DATA").startswith(b"354")
        sock.sendall(raw + b"\r\n.\r\n")
        replies = [reader.readline(), reader.readline()]
        assert all(r.startswith(b"250 2.0.0") for r in replies), replies
        command("QUIT")
    # The notice names a.example.org, but the envelope (the token) decides the delivery.
    assert delivery(rt, first.delivery_id).status == "bounced"
    assert delivery(rt, second.delivery_id).status == "bounced"


def test_smtp_mode(rt: Runtime) -> None:
    """With lmtp off, the receiver speaks SMTP and records the notice before its 250."""
    sent = send_to(rt, "gone@example.org")
    to = verp(rt, sent.delivery_id)
    with BounceServer(processor(rt), port=0, lmtp=False) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("", [to], dsn(sent.email, to=to)) == {}
    assert delivery(rt, sent.delivery_id).status == "bounced"


class BrokenProcessor(BounceProcessor):
    """A processor whose database is down."""

    def process(self, raw: bytes, *, envelope_recipients: object = ()) -> ProcessResult:  # type: ignore[override]
        raise StoreError("database error: connection refused")


def test_database_error_answers_451_so_the_mta_retries(rt: Runtime) -> None:
    """When the commit fails, the reply is 451 4.3.0 (try again), never 250."""
    sent = send_to(rt, "gone@example.org")
    to = verp(rt, sent.delivery_id)
    good = processor(rt)
    broken = BrokenProcessor(
        rt.sessions,
        policy=rt.settings.bounces,
        tokens=Tokens.from_settings(rt.settings),
        bounce_domain="bounces.example.com",
        clock=rt.clock,
    )
    assert broken.accepts_recipient(to) and good.accepts_recipient(to)
    with BounceServer(broken, port=0) as server, smtplib.LMTP("127.0.0.1", server.port) as client:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            client.sendmail("", [to], dsn(sent.email, to=to))
        assert failed.value.smtp_code == 451
    assert events(rt) == []


@pytest.mark.parametrize(
    "to", ["postmaster@bounces.example.com", "Abuse@Bounces.Example.com", "fbl@fbl-in.example.com"]
)
def test_staff_addresses_keep_human_mail_before_250(rt: Runtime, to: str) -> None:
    """Mail to postmaster@, abuse@ or the feedback-loop address is accepted and kept for staff before the 250, never dropped."""
    raw = b"From: admin@example.net\r\nTo: postmaster@bounces.example.com\r\nSubject: Your server\r\nMessage-ID: <h1@example.net>\r\n\r\nHello, a question about your mail.\r\n"
    with BounceServer(processor(rt, feedback_address="FBL@fbl-in.example.com"), port=0) as server:
        with smtplib.LMTP("127.0.0.1", server.port) as client:
            assert client.sendmail("admin@example.net", [to], raw) == {}
            [kept] = inbox(rt)
            assert (kept.category, kept.envelope_to, kept.subject) == ("staff", to, "Your server")
            assert kept.raw is not None and "a question about your mail" in kept.raw
        assert [r.outcome.value for r in server.handler.results] == ["kept"]


def test_arf_to_feedback_address_with_token_is_filed(rt: Runtime) -> None:
    """An abuse report at the feedback-loop address, its original carrying our VERP token, suppresses the complainer and is not kept as staff mail."""
    sent = send_to(rt, "reader@example.net")
    raw = arf(sent.email, to="fbl@bounces.example.com", return_path=verp(rt, sent.delivery_id))
    proc = processor(rt, feedback_address="fbl@bounces.example.com")
    with BounceServer(proc, port=0) as server, smtplib.LMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("", ["fbl@bounces.example.com"], raw) == {}
    assert ("reader@example.net", "*") in suppressions(rt)
    assert [e.kind for e in events(rt, sent.delivery_id)] == ["complained"]
    assert inbox(rt) == []


def test_arf_at_abuse_without_token_is_kept_for_review_and_suppresses_nobody(rt: Runtime) -> None:
    """An abuse report at abuse@ matched only by Message-ID is recorded for review; nobody is suppressed."""
    sent = send_to(rt, "reader@example.net")
    raw = arf(sent.email, to="abuse@bounces.example.com", original_message_id=sent.message_id)
    with BounceServer(processor(rt), port=0) as server, smtplib.LMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("", ["abuse@bounces.example.com"], raw) == {}
    assert suppressions(rt) == {}
    assert [(k.category, k.delivery_id) for k in inbox(rt)] == [("review", sent.delivery_id)]


def test_arf_for_nobody_known_at_postmaster_is_kept_for_staff(rt: Runtime) -> None:
    """An abuse report about a message we cannot match, sent to postmaster@, is kept for staff."""
    raw = arf("stranger@example.net", to="postmaster@bounces.example.com")
    with BounceServer(processor(rt), port=0) as server, smtplib.LMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("", ["postmaster@bounces.example.com"], raw) == {}
    [kept] = inbox(rt)
    assert (kept.category, kept.summary) == ("staff", "complaint (abuse)")
