"""The SMTP client's time limits (one deadline per transaction phase, not a timer per reply)
against relays that trickle, stall in the middle of a reply, never answer or never read;
and dot-stuffing checked against a real aiosmtpd server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest

from mailer.domain.states import Outcome
from mailer.smtp.client import WireReady, dot_stuff
from mailer.smtp.factory import make_transport
from tests.smtp.test_transport import (
    EHLO_PIPELINING,
    MESSAGE,
    SENDER,
    Step,
    aiosmtpd_server,
    scripted_server,
    send,
    settings,
)
from tests.support.faultsmtp import running_fault_server

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def relay(handler: Handler) -> AsyncIterator[int]:
    """A hand-written relay on a free port; yields the port. Its connections are dropped
    at the end (a handler may still be waiting)."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, pipelining: bool = True) -> None:
    """Greeting and EHLO (offering PIPELINING or not)."""
    writer.write(b"220 slow ESMTP\r\n")
    await reader.readline()
    writer.write(b"250-slow\r\n250 PIPELINING\r\n" if pipelining else b"250 slow\r\n")
    await writer.drain()


async def trickle(writer: asyncio.StreamWriter, text: bytes, pause: float) -> None:
    """Write ``text`` one byte at a time, ``pause`` seconds apart."""
    for i in range(len(text)):
        writer.write(text[i : i + 1])
        await writer.drain()
        await asyncio.sleep(pause)


async def timed_send(port: int, **smtp: Any) -> tuple[Outcome, str, str, float]:
    started = time.monotonic()
    (result,) = await send(settings(port, **smtp), "x@example.com")
    return result.outcome, result.stage, result.reply, time.monotonic() - started


async def test_relay_trickling_the_envelope_replies_is_cut_off_at_command_timeout() -> None:
    """A relay that trickles its MAIL/RCPT/DATA replies a byte every 20 ms (every byte on
    time, the envelope not): deferred after ~command_timeout, with the time named."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for _ in range(3):
            await reader.readline()
        with suppress(ConnectionError):
            await trickle(writer, b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 go\r\n", 0.02)
        writer.close()

    async with relay(handler) as port:
        outcome, stage, reply, took = await timed_send(port, command_timeout=0.4)
    assert (outcome, reply) == (Outcome.DEFERRED, "connection lost: no reply within 0.4s")
    assert stage in ("mail", "rcpt", "data")
    assert took < 2.0


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "sequential"])
async def test_envelope_budget_is_shared_by_its_replies(pipelining: bool) -> None:
    """Each reply of the envelope comes 0.25 s after its command, within command_timeout
    (0.6 s) alone but not all three together: the transaction is deferred (one deadline
    for the envelope, not one per reply)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, pipelining=pipelining)
        try:
            for reply in (b"250 OK\r\n", b"250 OK\r\n", b"354 go\r\n"):
                if not pipelining or reply == b"250 OK\r\n":
                    await reader.readline()
                await asyncio.sleep(0.25)
                writer.write(reply)
                await writer.drain()
            await reader.read()
        except ConnectionError:
            pass
        writer.close()

    async with relay(handler) as port:
        outcome, _, reply, took = await timed_send(port, command_timeout=0.6)
    assert (outcome, reply) == (Outcome.DEFERRED, "connection lost: no reply within 0.6s")
    assert took < 2.0


@pytest.mark.parametrize("after", ["mail", "data"])
async def test_relay_stalling_in_the_middle_of_a_reply(after: str) -> None:
    """A relay that sends the first line of a multi-line reply and then nothing: cut off at
    command_timeout before the data (deferred), at data_timeout after it (unknown)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for _ in range(3):
            await reader.readline()
        if after == "mail":
            writer.write(b"250-2.1.0 sender ok, and then\r\n")
        else:
            writer.write(b"250 OK\r\n250 OK\r\n354 go\r\n")
            while await reader.readline() not in (b".\r\n", b""):
                pass
            writer.write(b"250-2.0.0 queued as 1\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    async with relay(handler) as port:
        outcome, stage, reply, took = await timed_send(port, command_timeout=0.3, data_timeout=0.5)
    if after == "mail":
        assert (outcome, stage, reply) == (Outcome.DEFERRED, "mail", "connection lost: no reply within 0.3s")
    else:
        assert (outcome, stage) == (Outcome.UNKNOWN, "data")
        assert reply == "connection lost during data: no reply within 0.5s"
    assert took < 2.0


async def test_relay_that_never_reads_the_data_is_cut_off_at_data_timeout() -> None:
    """A relay that answers 354 and then stops reading: the write waits for the socket
    (the message is larger than the buffers) until data_timeout aborts it: unknown."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        for _ in range(3):
            await reader.readline()
        writer.write(b"250 OK\r\n250 OK\r\n354 go\r\n")
        await writer.drain()
        await asyncio.sleep(5)  # reads nothing more
        writer.close()

    big = MESSAGE + b"x" * 1000 + b"\r\n"
    big = big * 40_000  # ~40 MB: more than any socket buffer takes
    async with relay(handler) as port:
        started = time.monotonic()
        (result,) = await send(settings(port, data_timeout=0.5), "x@example.com", data=big)
        took = time.monotonic() - started
    assert (result.outcome, result.stage) == (Outcome.UNKNOWN, "data")
    assert result.reply == "connection lost during data: no reply within 0.5s"
    assert took < 3.0


async def test_before_data_is_outside_the_relay_budgets() -> None:
    """A slow before_data (longer than command_timeout and data_timeout) does not count
    against the relay: the message is sent."""

    async def slow_mark() -> None:
        await asyncio.sleep(0.5)

    with running_fault_server() as smtp:
        pool = make_transport(settings(smtp.port, command_timeout=0.3, data_timeout=0.3))
        try:
            result = await pool.send(SENDER, "a@example.com", MESSAGE, before_data=slow_mark)
        finally:
            await pool.close()
        assert result.outcome == Outcome.SENT
        assert smtp.copies_of("a@example.com") == 1


async def test_idle_connection_outlives_the_deadline_of_a_refused_transaction() -> None:
    """A refused RCPT leaves the connection idle in the pool; longer than command_timeout
    later it is still used (no deadline runs while idle)."""
    with running_fault_server() as smtp:
        smtp.fail_rcpt("gone@example.com", "550 5.1.1 No such user")
        pool = make_transport(settings(smtp.port, pool_size=1, command_timeout=0.2, data_timeout=0.2))
        try:
            refused = await pool.send(SENDER, "gone@example.com", MESSAGE)
            await asyncio.sleep(0.5)
            sent = await pool.send(SENDER, "here@example.com", MESSAGE)
        finally:
            await pool.close()
        assert (refused.outcome, sent.outcome) == (Outcome.FAILED, Outcome.SENT)
        assert smtp.connections == 1


async def test_a_transaction_arms_no_timer_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """50 messages over one connection schedule a handful of timers, not one per reply."""
    loop = asyncio.get_running_loop()
    calls: list[float] = []
    real_call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        calls.append(when)
        return real_call_at(when, callback, *args, **kwargs)

    with running_fault_server() as smtp:
        pool = make_transport(settings(smtp.port, pool_size=1))
        try:
            await pool.send(SENDER, "warm@example.com", MESSAGE)  # connect (set-up arms its own)
            monkeypatch.setattr(loop, "call_at", counting_call_at)
            results = [await pool.send(SENDER, f"r{i}@example.com", MESSAGE) for i in range(50)]
            monkeypatch.undo()
        finally:
            await pool.close()
        assert [r.outcome for r in results] == [Outcome.SENT] * 50
    assert len(calls) <= 3, len(calls)


async def test_354_after_a_refused_recipient_gets_an_empty_message_and_a_rset() -> None:
    """A non-compliant relay answers 354 to a pipelined DATA although it refused the RCPT:
    the client ends the data at once (``.`` alone), reports the RCPT refusal and begins the
    next group with RSET."""
    steps = [
        EHLO_PIPELINING,
        Step(["MAIL FROM:<", "RCPT TO:<GONE@", "DATA"], ["250 OK", "550 5.1.1 No such user", "354 go"]),
        Step([], ["554 5.5.1 no valid recipients"], data=True),
        Step(["RSET", "MAIL FROM:<", "RCPT TO:<OK@", "DATA"], ["250 OK", "250 OK", "250 OK", "354 go"]),
        Step([], ["250 2.0.0 queued"], data=True),
        Step(["QUIT"], ["221 bye"]),
    ]
    async with scripted_server(steps) as (port, seen):
        gone, ok = await send(settings(port, command_timeout=2), "gone@example.com", "ok@example.com")
    assert (gone.outcome, gone.stage, gone.code) == (Outcome.FAILED, "rcpt", 550)
    assert (ok.outcome, ok.reply) == (Outcome.SENT, "250 2.0.0 queued")
    assert seen.count("Hello.\r\n") == 1


# --- dot-stuffing against a real server -------------------------------------------------------

#: (what is sent, what must arrive)
DOTTED = [
    (b".starts with a dot\r\n" + MESSAGE, b".starts with a dot\r\n" + MESSAGE),  # the very first byte
    (MESSAGE + b".\r\n..\r\n.hidden\r\n...three\r\nend\r\n", MESSAGE + b".\r\n..\r\n.hidden\r\n...three\r\nend\r\n"),
    (MESSAGE + b"last line .\r\n.", MESSAGE + b"last line .\r\n.\r\n"),  # a dot as the last byte, no CRLF
    ((MESSAGE + b".a\n.b\r.c\r\n").replace(b"\r\n", b"\n"), MESSAGE + b".a\r\n.b\r\n.c\r\n"),  # bare LF / CR
    (MESSAGE, MESSAGE),  # clean: nothing to stuff
]


@pytest.mark.parametrize("wire_ready", [False, True], ids=["plain", "wire-ready"])
async def test_dot_stuffing_against_aiosmtpd(wire_ready: bool) -> None:
    """Messages with leading dots (first line, middle, last byte, bare line endings) and a
    clean one arrive at a stock aiosmtpd exactly as meant (canonical CRLF); clean bytes
    marked WireReady arrive the same."""
    async with aiosmtpd_server() as (port, recorder):
        if wire_ready:
            (result,) = await send(settings(port), "clean@example.com", data=WireReady(MESSAGE))
            results = [result]
        else:
            pool = make_transport(settings(port, pool_size=1))
            try:
                results = [await pool.send(SENDER, f"d{i}@example.com", sent) for i, (sent, _) in enumerate(DOTTED)]
            finally:
                await pool.close()
    assert {r.outcome for r in results} == {Outcome.SENT}
    got = [m[2] for m in recorder.messages]
    assert got == ([MESSAGE] if wire_ready else [arrives for _, arrives in DOTTED])


def test_dot_stuff_fast_path_and_wire_ready() -> None:
    """Clean data gets only the terminator; WireReady is not scanned (taken as it is); a
    WireReady transformed into plain bytes is checked again."""
    assert dot_stuff(MESSAGE) == MESSAGE + b".\r\n"
    assert dot_stuff(WireReady(MESSAGE)) == MESSAGE + b".\r\n"
    assert type(dot_stuff(WireReady(MESSAGE))) is bytes
    assert dot_stuff(WireReady(MESSAGE) + b".x\r\n") == MESSAGE + b"..x\r\n.\r\n"
