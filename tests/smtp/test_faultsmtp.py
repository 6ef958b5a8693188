"""The fault-injecting SMTP server, driven by a real aiosmtplib client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import aiosmtplib
import pytest
from aiosmtplib import (
    SMTPDataError,
    SMTPRecipientRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from tests.support.faultsmtp import Accepted, FaultSMTPServer, running_fault_server

SENDER = "bounces+tok@mailer.example.org"


def message(rcpt: str, message_id: str = "<m1@mailer.example.org>") -> bytes:
    return (
        f"From: Press <press@example.org>\r\nTo: {rcpt}\r\nSubject: News\r\nMessage-ID: {message_id}\r\n\r\nHello.\r\n"
    ).encode()


@pytest.fixture(scope="module")
def _module_server() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as server:
        yield server


@pytest.fixture
def server(_module_server: FaultSMTPServer) -> Iterator[FaultSMTPServer]:
    _module_server.reset()
    yield _module_server
    _module_server.reset()


@pytest.fixture
async def client(server: FaultSMTPServer) -> AsyncIterator[aiosmtplib.SMTP]:
    smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=5)
    await smtp.connect()
    yield smtp
    if smtp.is_connected:
        smtp.close()


async def send(smtp: aiosmtplib.SMTP, rcpt: str, message_id: str = "<m1@x.org>") -> None:
    """One transaction, one recipient, as our transport sends."""
    await smtp.mail(SENDER)
    await smtp.rcpt(rcpt)
    await smtp.data(message(rcpt, message_id))


async def test_plain_send_is_recorded(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """With no faults set, a message is accepted and recorded with its envelope."""
    await send(client, "a@example.com", "<one@x.org>")
    assert server.accepted == [Accepted("<one@x.org>", "a@example.com", SENDER)]
    assert server.raw[0].startswith(b"From: Press")
    assert server.copies_of("a@example.com") == 1
    assert server.rcpt_attempts("a@example.com") == 1
    assert server.duplicates() == []


@pytest.mark.parametrize("reply", ["550 5.1.1 No such user", "452 4.2.2 Mailbox full", "552 5.2.2 Over quota"])
async def test_standing_rcpt_reply_refuses_recipient(
    server: FaultSMTPServer, client: aiosmtplib.SMTP, reply: str
) -> None:
    """A standing rcpt_reply refuses that recipient every time, others go through."""
    server.rcpt_reply["x@example.com"] = reply
    for _ in range(2):
        await client.mail(SENDER)
        with pytest.raises(SMTPRecipientRefused) as err:
            await client.rcpt("x@example.com")
        assert err.value.code == int(reply[:3])
        assert err.value.recipient == "x@example.com"
        await client.rset()
    await send(client, "y@example.com")
    assert server.copies_of("x@example.com") == 0
    assert server.copies_of("y@example.com") == 1
    assert server.rcpt_attempts("x@example.com") == 2


async def test_counted_rcpt_fault_expires(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """fail_rcpt(times=2) refuses twice, then the recipient is accepted."""
    server.fail_rcpt("x@example.com", "452 4.2.2 Mailbox full", times=2)
    for _ in range(2):
        await client.mail(SENDER)
        with pytest.raises(SMTPRecipientRefused) as err:
            await client.rcpt("x@example.com")
        assert err.value.code == 452
        await client.rset()
    await send(client, "x@example.com")
    assert server.copies_of("x@example.com") == 1


async def test_queued_faults_fire_in_order(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """Two counted DATA faults for one recipient fire one after the other."""
    server.fail_data("x@example.com", "451 4.3.0 Try later")
    server.fail_data("x@example.com", "554 5.7.1 Rejected by policy")
    codes = []
    for _ in range(2):
        with pytest.raises(SMTPDataError) as err:
            await send(client, "x@example.com")
        codes.append(err.value.code)
    assert codes == [451, 554]
    await send(client, "x@example.com")
    assert server.copies_of("x@example.com") == 1


@pytest.mark.parametrize("reply", ["451 4.3.0 Try later", "554 5.7.1 Rejected by policy"])
async def test_data_fault_refuses_message(server: FaultSMTPServer, client: aiosmtplib.SMTP, reply: str) -> None:
    """fail_data answers the end of DATA with the chosen code and records nothing."""
    server.fail_data("x@example.com", reply, times=1)
    with pytest.raises(SMTPDataError) as err:
        await send(client, "x@example.com")
    assert err.value.code == int(reply[:3])
    assert server.accepted == []
    await send(client, "x@example.com")
    assert server.copies_of("x@example.com") == 1


async def test_standing_data_reply(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """A standing data_reply refuses every message for that recipient."""
    server.data_reply["x@example.com"] = "554 5.7.1 Rejected by policy"
    for _ in range(2):
        with pytest.raises(SMTPDataError):
            await send(client, "x@example.com")
    assert server.accepted == []


async def test_data_421_closes_connection(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """A 421 after DATA is sent and then the server hangs up."""
    server.fail_data("x@example.com", "421 4.7.0 Closing")
    with pytest.raises(SMTPDataError) as err:
        await send(client, "x@example.com")
    assert err.value.code == 421
    with pytest.raises(SMTPServerDisconnected):
        await client.noop()
    assert server.accepted == []


async def test_rcpt_421_closes_connection(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """A 421 at RCPT is sent and then the server hangs up."""
    server.fail_rcpt("x@example.com", "421 4.7.0 Closing")
    await client.mail(SENDER)
    with pytest.raises(SMTPRecipientRefused) as err:
        await client.rcpt("x@example.com")
    assert err.value.code == 421
    with pytest.raises(SMTPServerDisconnected):
        await client.noop()


@pytest.mark.parametrize("count_as_accepted", [False, True])
async def test_drop_after_data(server: FaultSMTPServer, client: aiosmtplib.SMTP, count_as_accepted: bool) -> None:
    """drop_after_data reads the message, hangs up unanswered; recorded only if asked."""
    server.drop_after_data("x@example.com", count_as_accepted=count_as_accepted)
    with pytest.raises(SMTPServerDisconnected):
        await send(client, "x@example.com", "<d@x.org>")
    assert server.copies_of("x@example.com") == int(count_as_accepted)
    # The fault fired once; a new connection delivers.
    retry = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=5)
    async with retry:
        await send(retry, "x@example.com", "<d@x.org>")
    assert server.copies_of("x@example.com") == 1 + int(count_as_accepted)
    expected = [("<d@x.org>", "x@example.com")] if count_as_accepted else []
    assert server.duplicates() == expected


@pytest.mark.parametrize("count_as_accepted", [False, True])
async def test_stall_after_data_times_out_client(server: FaultSMTPServer, count_as_accepted: bool) -> None:
    """A stall past the client's timeout gives SMTPTimeoutError; recorded only if asked."""
    server.stall_after_data("x@example.com", seconds=2.0, count_as_accepted=count_as_accepted)
    smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=0.3)
    await smtp.connect()
    started = time.monotonic()
    with pytest.raises(SMTPTimeoutError):
        await send(smtp, "x@example.com")
    assert time.monotonic() - started < 1.5
    smtp.close()
    await asyncio.sleep(0.05)
    assert server.copies_of("x@example.com") == int(count_as_accepted)


async def test_short_stall_then_accept(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """A stall shorter than the client's timeout only delays the 250."""
    server.stall_after_data("x@example.com", seconds=0.2)
    started = time.monotonic()
    await send(client, "x@example.com")
    assert time.monotonic() - started >= 0.2
    assert server.copies_of("x@example.com") == 1


async def test_slow_greeting(server: FaultSMTPServer) -> None:
    """greeting_delay delays the 220; a short connect timeout trips on it."""
    server.greeting_delay = 0.5
    impatient = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=0.1)
    with pytest.raises(SMTPTimeoutError):
        await impatient.connect()
    impatient.close()
    patient = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=5)
    started = time.monotonic()
    async with patient:
        assert time.monotonic() - started >= 0.5
        await send(patient, "x@example.com")
    assert server.copies_of("x@example.com") == 1
    assert server.connections == 2


async def test_duplicates_and_copies(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """The same Message-ID to the same recipient twice is a duplicate; others are not."""
    await send(client, "a@example.com", "<m1@x.org>")
    await send(client, "b@example.com", "<m1@x.org>")
    await send(client, "a@example.com", "<m2@x.org>")
    await send(client, "a@example.com", "<m1@x.org>")
    assert server.copies_of("a@example.com") == 3
    assert server.duplicates() == [("<m1@x.org>", "a@example.com")]
    server.reset()
    assert server.accepted == [] and server.raw == [] and server.duplicates() == []


async def test_message_id_folded_and_missing(server: FaultSMTPServer, client: aiosmtplib.SMTP) -> None:
    """A folded Message-ID is unfolded; a message without one records None."""
    await client.sendmail(SENDER, ["a@example.com"], b"Message-ID:\r\n <f@x.org>\r\n\r\nx\r\n")
    await client.sendmail(SENDER, ["b@example.com"], b"Subject: none\r\n\r\nx\r\n")
    assert [a.message_id for a in server.accepted] == ["<f@x.org>", None]


@pytest.mark.slow
async def test_many_connections_and_messages(server: FaultSMTPServer) -> None:
    """200 concurrent connections sending 10 messages each are all recorded quickly."""

    async def worker(n: int) -> None:
        smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=10)
        async with smtp:
            for i in range(10):
                await send(smtp, f"r{n}-{i}@example.com", f"<{n}.{i}@x.org>")

    started = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(200)))
    assert len(server.accepted) == 2000
    assert server.connections == 200
    assert server.duplicates() == []
    assert time.monotonic() - started < 10
    assert server.wait_for_accepted(2000, timeout=0.1)


def test_controls_validate_arguments() -> None:
    """Bad times, replies and stall lengths are refused up front."""
    server = FaultSMTPServer()
    with pytest.raises(ValueError):
        server.fail_rcpt("x@example.com", "550 nope", times=0)
    with pytest.raises(ValueError):
        server.fail_data("x@example.com", "nope")
    with pytest.raises(ValueError):
        server.stall_after_data("x@example.com", seconds=-1)


def test_subprocess_can_send(server: FaultSMTPServer) -> None:
    """A separate process (like a dispatch worker) sends to the server in this process."""
    server.fail_rcpt("x@example.com", "452 4.2.2 Mailbox full")
    script = (
        "import smtplib, sys\n"
        "with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=5) as s:\n"
        "    refused = s.sendmail(sys.argv[3], ['x@example.com', 'y@example.com'],\n"
        "                         b'Message-ID: <p@x.org>\\r\\n\\r\\nhi\\r\\n')\n"
        "print(refused['x@example.com'][0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, server.host, str(server.port), SENDER],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert done.stdout.strip() == "452"
    assert server.accepted == [Accepted("<p@x.org>", "y@example.com", SENDER)]
