"""The SMTP client and its pool against real servers on random ports: aiosmtpd (plain,
STARTTLS, implicit TLS, AUTH, the fault server) and a scripted line server that proves what
goes out in one write (pipelining on and off, refusals at each stage, timeouts)."""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailer.config import Settings, SmtpSettings
from mailer.domain.errors import TransportError
from mailer.domain.states import Outcome
from mailer.domain.status import Fault
from mailer.smtp.client import dot_stuff, parse_reply_line
from mailer.smtp.factory import make_transport
from mailer.smtp.pool import SmtpPool
from mailer.smtp.server import BoundController, bind_listener
from mailer.smtp.transport import SendResult, Transport
from tests.support.faultsmtp import FaultSMTPServer, running_fault_server

MESSAGE = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nHello.\r\n"
SENDER = "bounces+x@example.org"


# --- servers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


@pytest.fixture
def smtp(fault_server: FaultSMTPServer) -> FaultSMTPServer:
    fault_server.reset()
    return fault_server


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    made = Cert(folder / "cert.pem", folder / "key.pem")
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1"
    subprocess.run(
        [
            *command.split(),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            *("-keyout", str(made.key), "-out", str(made.cert)),
        ],
        check=True,
        capture_output=True,
    )
    return made


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every accepted message."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 2.0.0 OK"


def check_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    """aiosmtpd authenticator: only user ``mailer`` with password ``s3cret`` gets in."""
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, handled=False)


@asynccontextmanager
async def aiosmtpd_server(**smtp_kwargs: Any) -> AsyncIterator[tuple[int, Recorder]]:
    """A real aiosmtpd server on a free port with ``smtp_kwargs`` (TLS, AUTH ...)."""
    recorder = Recorder()
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    controller = BoundController(recorder, sock, **smtp_kwargs)
    await asyncio.to_thread(controller.start)
    try:
        yield port, recorder
    finally:
        await asyncio.to_thread(controller.stop)


def settings(port: int, **smtp: Any) -> SmtpSettings:
    return Settings.model_validate(
        {"smtp": {"host": "127.0.0.1", "port": port, "command_timeout": 5, "data_timeout": 5} | smtp}
    ).smtp


async def send(smtp_settings: SmtpSettings, *recipients: str, data: bytes = MESSAGE) -> list[SendResult]:
    """Send ``data`` to each recipient in turn over one pool; close it."""
    pool = make_transport(smtp_settings)
    try:
        return [await pool.send(SENDER, r, data) for r in recipients]
    finally:
        await pool.close()


# --- a scripted line server -------------------------------------------------------------


@dataclass
class Step:
    """The command lines the server waits for (prefixes, all before it answers) and the
    reply lines it then sends in one write. ``data=True``: read a message up to ``.``
    first (then the command lines: ones pipelined after the data)."""

    expect: list[str]
    replies: list[str]
    data: bool = False


@asynccontextmanager
async def scripted_server(steps: list[Step]) -> AsyncIterator[tuple[int, list[str]]]:
    """A server that follows ``steps`` on one connection and records every line it got.

    It answers a step only once *all* of its command lines have arrived, so a client
    that waits for a reply between them stalls (and times out): a step of two commands
    passes only if the client pipelined them. An empty ``replies`` closes the connection."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            for step in steps:
                if step.data:
                    while (line := await reader.readline()) not in (b".\r\n", b""):
                        seen.append(line.decode())
                for prefix in step.expect:
                    text = (await reader.readline()).decode()
                    seen.append(text.rstrip("\r\n"))
                    assert text.upper().startswith(prefix), (prefix, text)
                if not step.replies:
                    return  # hang up without a word
                writer.write("".join(f"{r}\r\n" for r in step.replies).encode())
                await writer.drain()
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()


EHLO_PIPELINING = Step(["EHLO"], ["250-scripted", "250-PIPELINING", "250 8BITMIME"])


# --- tests --------------------------------------------------------------------------------


async def test_plain_send_arrives_once_per_recipient(smtp: FaultSMTPServer) -> None:
    """Plain SMTP: three messages over one pooled connection arrive with their envelope."""
    results = await send(settings(smtp.port, pool_size=1), "a@example.com", "b@example.com", "c@example.com")
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert results[0].reply == "250 2.0.0 OK" and results[0].stage == "data"
    assert [a.recipient for a in smtp.accepted] == ["a@example.com", "b@example.com", "c@example.com"]
    assert {a.sender for a in smtp.accepted} == {SENDER}
    assert smtp.raw[0] == MESSAGE
    assert smtp.connections == 1


async def test_before_data_runs_once_between_the_354_and_the_data(smtp: FaultSMTPServer) -> None:
    """before_data runs once for an accepted recipient (after the 354, before any byte of
    the message), never for a refused one."""
    smtp.rcpt_reply["gone@example.com"] = "550 5.1.1 No such user"
    pool = make_transport(settings(smtp.port))
    calls: list[int] = []

    async def mark() -> None:
        calls.append(len(smtp.accepted))

    try:
        refused = await pool.send(SENDER, "gone@example.com", MESSAGE, before_data=mark)
        sent = await pool.send(SENDER, "here@example.com", MESSAGE, before_data=mark)
    finally:
        await pool.close()
    assert (refused.outcome, sent.outcome) == (Outcome.FAILED, Outcome.SENT)
    assert calls == [0]


async def test_dot_stuffing_keeps_lines_that_start_with_a_dot(smtp: FaultSMTPServer) -> None:
    """Body lines ".", ".." and ".hidden" (and a bare-LF message) arrive exactly as written."""
    body = MESSAGE + b".\r\n..\r\n.hidden\r\nend\r\n"
    bare_lf = body.replace(b"\r\n", b"\n")
    results = await send(settings(smtp.port), "dots@example.com", "lf@example.com", data=body)
    results += await send(settings(smtp.port), "lf@example.com", data=bare_lf)
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert smtp.raw == [body, body, body]


def test_dot_stuff_wire_format() -> None:
    """The DATA payload: CRLF everywhere, leading dots doubled, CRLF . CRLF at the end."""
    assert dot_stuff(b".a\nb\r.c\r\n") == b"..a\r\nb\r\n..c\r\n.\r\n"
    assert dot_stuff(b"no final newline") == b"no final newline\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"


def test_reply_lines_parse() -> None:
    """Reply lines: continuation, last line, a bare code; anything else is not SMTP."""
    assert parse_reply_line(b"250-PIPELINING\r\n") == (250, False, "PIPELINING")
    assert parse_reply_line(b"550 5.1.1 No such user\r\n") == (550, True, "5.1.1 No such user")
    assert parse_reply_line(b"250\r\n") == (250, True, "")
    with pytest.raises(Exception, match="not an SMTP reply"):
        parse_reply_line(b"HTTP/1.1 400 Bad Request\r\n")


async def test_pipelining_groups_mail_rcpt_data_and_owed_rset_with_multiline_replies() -> None:
    """With PIPELINING offered, MAIL+RCPT+DATA go in one write (the server answers only once
    it has all three); a multi-line 550 is one reply; the owed RSET rides with the next group."""
    steps = [
        EHLO_PIPELINING,
        Step(
            ["MAIL FROM:<", "RCPT TO:<GONE@", "DATA"],
            ["250 2.1.0 OK", "550-5.1.1 No such user", "550 5.1.1 here, sorry", "554 5.5.1 No valid recipients"],
        ),
        Step(
            ["RSET", "MAIL FROM:<", "RCPT TO:<OK@", "DATA"], ["250 2.0.0 OK", "250 2.1.0 OK", "250 2.1.5 OK", "354 go"]
        ),
        Step([], ["250-2.0.0 queued as 1", "250 2.0.0 thanks"], data=True),
        Step(["QUIT"], ["221 2.0.0 bye"]),
    ]
    async with scripted_server(steps) as (port, seen):
        gone, ok = await send(settings(port, command_timeout=2), "gone@example.com", "ok@example.com")
    assert (gone.outcome, gone.fault, gone.hard, gone.stage) == (Outcome.FAILED, Fault.RECIPIENT, True, "rcpt")
    assert gone.reply == "550 5.1.1 No such user\n5.1.1 here, sorry" and gone.status == "5.1.1"
    assert (ok.outcome, ok.reply) == (Outcome.SENT, "250 2.0.0 queued as 1\n2.0.0 thanks")
    assert "Hello.\r\n" in seen


async def test_refused_mail_keeps_the_pipelined_stream_in_step() -> None:
    """MAIL refused inside a MAIL+RCPT+DATA group: the RCPT and DATA replies that follow are
    consumed, so the next message reads its own replies (not the stale 503s)."""
    steps = [
        EHLO_PIPELINING,
        Step(
            ["MAIL FROM:<", "RCPT TO:<FIRST@", "DATA"],
            ["451 4.3.0 Sender check failed", "503 5.5.1 need MAIL first", "503 5.5.1 need RCPT first"],
        ),
        Step(["RSET", "MAIL FROM:<", "RCPT TO:<SECOND@", "DATA"], ["250 2.0.0 OK", "250 2.1.0 OK", "250 OK", "354 go"]),
        Step([], ["250 2.0.0 queued"], data=True),
        Step(["QUIT"], ["221 2.0.0 bye"]),
    ]
    async with scripted_server(steps) as (port, _):
        first, second = await send(settings(port, command_timeout=2), "first@example.com", "second@example.com")
    assert (first.outcome, first.stage, first.code) == (Outcome.DEFERRED, "mail", 451)
    assert (second.outcome, second.reply) == (Outcome.SENT, "250 2.0.0 queued")


async def test_server_without_pipelining_gets_one_command_at_a_time() -> None:
    """No PIPELINING: every command waits for its reply (the server answers each alone),
    RSET included; EHLO refused falls back to HELO."""
    steps = [
        Step(["EHLO"], ["502 5.5.1 EHLO not implemented"]),
        Step(["HELO"], ["250 scripted"]),
        Step(["MAIL FROM:<"], ["250 OK"]),
        Step(["RCPT TO:<FULL@"], ["452 4.2.2 Mailbox full"]),
        Step(["RSET"], ["250 OK"]),
        Step(["MAIL FROM:<"], ["250 OK"]),
        Step(["RCPT TO:<OK@"], ["250 OK"]),
        Step(["DATA"], ["354 go ahead"]),
        Step([], ["250 queued"], data=True),
        Step(["QUIT"], ["221 bye"]),
    ]
    async with scripted_server(steps) as (port, seen):
        full, ok = await send(settings(port, command_timeout=2), "full@example.com", "ok@example.com")
    assert (full.outcome, full.stage, full.status) == (Outcome.DEFERRED, "rcpt", "4.2.2")
    assert ok.outcome == Outcome.SENT
    assert seen[-1] == "QUIT"


async def test_aiosmtpd_without_pipelining() -> None:
    """A stock aiosmtpd (no PIPELINING offered): two messages over one connection arrive."""
    async with aiosmtpd_server() as (port, recorder):
        results = await send(settings(port), "a@example.com", "b@example.com")
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert [m[1] for m in recorder.messages] == [["a@example.com"], ["b@example.com"]]


async def test_starttls_trusts_the_ca_file_and_only_it(cert: Cert) -> None:
    """STARTTLS to a self-signed server: trusted through ca_file; without it, TransportError."""
    async with aiosmtpd_server(tls_context=cert.server_context(), require_starttls=True) as (port, recorder):
        results = await send(settings(port, tls="starttls", ca_file=str(cert.cert)), "tls@example.com")
        with pytest.raises(TransportError, match=r"(?i)certificate"):
            await send(settings(port, tls="starttls"), "never@example.com")
    assert [r.outcome for r in results] == [Outcome.SENT]
    assert [m[1] for m in recorder.messages] == [["tls@example.com"]]


async def test_implicit_tls_with_ca_file(cert: Cert) -> None:
    """TLS from the first byte (port 465 style), the certificate trusted through ca_file."""
    async with aiosmtpd_server(ssl_context=cert.server_context()) as (port, recorder):
        results = await send(settings(port, tls="implicit", ca_file=str(cert.cert)), "tls@example.com")
    assert [r.outcome for r in results] == [Outcome.SENT]
    assert len(recorder.messages) == 1


@pytest.mark.parametrize("exclude", [[], ["PLAIN"]], ids=["plain", "login"])
async def test_auth_after_starttls_right_and_wrong_password(cert: Cert, exclude: list[str]) -> None:
    """AUTH PLAIN / LOGIN after STARTTLS: the right password sends; a wrong one raises
    TransportError with one line naming the refusal."""
    async with aiosmtpd_server(
        tls_context=cert.server_context(),
        authenticator=check_login,
        auth_require_tls=True,
        auth_exclude_mechanism=exclude,
    ) as (port, recorder):
        base = {"tls": "starttls", "ca_file": str(cert.cert), "username": "mailer"}
        results = await send(settings(port, **base, password="s3cret"), "auth@example.com")
        with pytest.raises(TransportError) as refused:
            await send(settings(port, **base, password="wrong"), "never@example.com")
    assert [r.outcome for r in results] == [Outcome.SENT]
    assert [m[1] for m in recorder.messages] == [["auth@example.com"]]
    assert "login refused" in str(refused.value) and "5.7.8" in str(refused.value)
    assert "\n" not in str(refused.value)


async def test_nothing_listening_raises_transport_error() -> None:
    """No server on the port: TransportError, one line."""
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(TransportError, match="cannot connect") as refused:
        await send(settings(port, connect_timeout=2), "x@example.com")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("fault", "outcome", "stage", "who", "hard"),
    [
        ("rcpt 550 5.1.1 No such user", Outcome.FAILED, "rcpt", Fault.RECIPIENT, True),
        ("rcpt 452 4.2.2 Mailbox full", Outcome.DEFERRED, "rcpt", Fault.RECIPIENT, False),
        ("rcpt 552 5.2.2 Over quota", Outcome.DEFERRED, "rcpt", Fault.RECIPIENT, False),
        ("rcpt 421 4.7.0 Closing", Outcome.DEFERRED, "rcpt", Fault.REMOTE, False),
        ("data 451 4.3.0 Try later", Outcome.DEFERRED, "data", Fault.REMOTE, False),
        ("data 554 5.7.1 Rejected as spam", Outcome.FAILED, "data", Fault.MESSAGE, False),
        ("data 421 4.7.0 Closing connection", Outcome.DEFERRED, "data", Fault.REMOTE, False),
        ("drop after data", Outcome.UNKNOWN, "data", None, False),
        ("stall after data", Outcome.UNKNOWN, "data", None, False),
    ],
)
async def test_every_fault_maps_to_its_result(
    smtp: FaultSMTPServer, fault: str, outcome: Outcome, stage: str, who: Fault | None, hard: bool
) -> None:
    """Each fault of the fault server gives the right SendResult; the next message on the
    same pool is sent (a closed connection is replaced, a refused one is reset)."""
    victim = "victim@example.com"
    where, _, reply = fault.partition(" ")
    if where not in ("rcpt", "data"):
        reply = ""
    if fault == "drop after data":
        smtp.drop_after_data(victim, count_as_accepted=True)
    elif fault == "stall after data":
        smtp.stall_after_data(victim, seconds=2.0, count_as_accepted=True)
    elif where == "rcpt":
        smtp.fail_rcpt(victim, reply)
    else:
        smtp.fail_data(victim, reply)
    result, after = await send(settings(smtp.port, data_timeout=0.5), victim, "after@example.com")
    assert (result.outcome, result.stage, result.fault, result.hard) == (outcome, stage, who, hard)
    if reply:
        assert result.reply == reply and result.code == int(reply[:3])
    assert after.outcome == Outcome.SENT
    closes = reply.startswith("421") or outcome == Outcome.UNKNOWN
    assert smtp.connections == (2 if closes else 1)
    assert smtp.copies_of("after@example.com") == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "sequential"])
async def test_connection_dropped_before_data_is_deferred(pipelining: bool) -> None:
    """The server hangs up without a reply to RCPT, or to DATA: no byte of the message was
    handed over, so deferred (never unknown)."""
    ehlo = EHLO_PIPELINING if pipelining else Step(["EHLO"], ["250 scripted"])
    cases = [
        [ehlo, Step(["MAIL FROM:<", "RCPT TO:<"] if pipelining else ["MAIL FROM:<"], [])],
        [ehlo, *([Step(["MAIL FROM:<", "RCPT TO:<"], ["250 OK", "250 OK"])] if pipelining else [
            Step(["MAIL FROM:<"], ["250 OK"]), Step(["RCPT TO:<"], ["250 OK"])]), Step(["DATA"], [])],
    ]  # fmt: skip
    for steps in cases:
        async with scripted_server(steps) as (port, _seen):
            (result,) = await send(settings(port), "x@example.com")
        assert result.outcome == Outcome.DEFERRED, (steps, result)
        assert result.reply == "connection lost: connection closed by the server"


async def test_data_command_refused_owes_a_rset_and_sends_no_data() -> None:
    """A 554 to the DATA command: the message fails at stage data, no byte of it is sent, and
    the next message begins with the owed RSET."""
    steps = [
        Step(["EHLO"], ["250 scripted"]),
        Step(["MAIL FROM:<"], ["250 OK"]),
        Step(["RCPT TO:<NO@"], ["250 OK"]),
        Step(["DATA"], ["554 5.7.1 Not from you"]),
        Step(["RSET"], ["250 OK"]),
        Step(["MAIL FROM:<"], ["250 OK"]),
        Step(["RCPT TO:<OK@"], ["250 OK"]),
        Step(["DATA"], ["354 go ahead"]),
        Step([], ["250 queued"], data=True),
        Step(["QUIT"], ["221 bye"]),
    ]
    async with scripted_server(steps) as (port, seen):
        no, ok = await send(settings(port, command_timeout=2), "no@example.com", "ok@example.com")
    assert (no.outcome, no.stage, no.code) == (Outcome.FAILED, "data", 554)
    assert ok.outcome == Outcome.SENT
    assert seen.count("Hello.\r\n") == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "sequential"])
async def test_no_reply_to_mail_within_command_timeout_is_deferred(pipelining: bool) -> None:
    """The server goes silent after EHLO: with no reply to MAIL within command_timeout the message is deferred
    (its data was never handed over) and the connection is dropped."""
    ehlo = b"250-scripted\r\n250 PIPELINING\r\n" if pipelining else b"250 scripted\r\n"

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow ESMTP\r\n")
        await reader.readline()
        writer.write(ehlo)
        await writer.drain()
        await reader.read()  # never answers again; returns when the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        (result,) = await send(settings(server.sockets[0].getsockname()[1], command_timeout=0.3), "x@example.com")
    finally:
        server.close()
    assert (result.outcome, result.stage) == (Outcome.DEFERRED, "mail")
    assert result.reply == "connection lost: no reply within 0.3s"


async def test_greeting_refused_raises_transport_error() -> None:
    """A 554 greeting: SMTP cannot be used at all, TransportError."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554 5.7.1 go away\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        with pytest.raises(TransportError, match=re.escape("554 5.7.1 go away")):
            await send(settings(server.sockets[0].getsockname()[1]), "x@example.com")
    finally:
        server.close()


def test_make_transport_is_the_pool_also_for_the_retired_client() -> None:
    """make_transport gives the pool of pipelining connections, also when smtp.client names
    the removed aiosmtplib client."""
    assert isinstance(make_transport(SmtpSettings()), SmtpPool)
    assert isinstance(make_transport(SmtpSettings(client="aiosmtplib")), SmtpPool)
    transport: Transport = make_transport(SmtpSettings())
    assert transport is not None
