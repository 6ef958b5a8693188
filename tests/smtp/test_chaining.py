"""The next envelope with this data (issue 20, :mod:`mailer.smtp.client`): one write a
message, nothing of the next message handed over before its own 354 and mark, and a
presented envelope never sent is dropped with its connection, never given a message."""

from __future__ import annotations

import asyncio

from mailer.domain.states import Outcome
from mailer.smtp.pool import SmtpPool
from tests.smtp.test_transport import EHLO_PIPELINING, MESSAGE, SENDER, Step, scripted_server, settings
from tests.support.faultsmtp import FaultSMTPServer


async def test_the_next_envelope_goes_out_with_the_data() -> None:
    """The data of a, its '.', and b's MAIL/RCPT/DATA are one write (the server answers a's data only once b's group came); b's mark runs only in b's own send."""
    steps = [
        EHLO_PIPELINING,
        Step(["MAIL FROM:<", "RCPT TO:<A@", "DATA"], ["250 2.1.0 OK", "250 2.1.5 OK", "354 go"]),
        Step(
            ["MAIL FROM:<", "RCPT TO:<B@", "DATA"],
            ["250 2.0.0 queued a", "250 2.1.0 OK", "250 2.1.5 OK", "354 go"],
            data=True,
        ),
        Step([], ["250 2.0.0 queued b"], data=True),
        Step(["QUIT"], ["221 bye"]),
    ]
    order: list[str] = []

    async def mark(name: str) -> None:
        order.append(f"mark {name}")

    async with scripted_server(steps) as (port, seen):
        pool = SmtpPool(settings(port, command_timeout=2))
        try:
            async with pool.session() as session:
                a = await session.send(
                    SENDER, "a@example.com", MESSAGE, before_data=lambda: mark("a"), following=(SENDER, "b@example.com")
                )
                order.append("a returned")
                b = await session.send(SENDER, "b@example.com", MESSAGE, before_data=lambda: mark("b"))
        finally:
            await pool.close()
    assert (a.outcome, a.reply) == (Outcome.SENT, "250 2.0.0 queued a")
    assert (b.outcome, b.reply) == (Outcome.SENT, "250 2.0.0 queued b")
    assert order == ["mark a", "a returned", "mark b"]
    assert seen.count("Hello.\r\n") == 2


async def test_a_refused_next_recipient_keeps_the_stream_in_step() -> None:
    """b's RCPT refused in the group that rode with a's data: a sent, b failed at rcpt with no data, c (RSET first) sent."""
    steps = [
        EHLO_PIPELINING,
        Step(["MAIL FROM:<", "RCPT TO:<A@", "DATA"], ["250 OK", "250 OK", "354 go"]),
        Step(
            ["MAIL FROM:<", "RCPT TO:<B@", "DATA"],
            ["250 2.0.0 queued a", "250 OK", "550 5.1.1 No such user", "554 5.5.1 No valid recipients"],
            data=True,
        ),
        Step(["RSET", "MAIL FROM:<", "RCPT TO:<C@", "DATA"], ["250 OK", "250 OK", "250 OK", "354 go"]),
        Step([], ["250 2.0.0 queued c"], data=True),
        Step(["QUIT"], ["221 bye"]),
    ]
    async with scripted_server(steps) as (port, seen):
        pool = SmtpPool(settings(port, command_timeout=2))
        try:
            async with pool.session() as session:
                a = await session.send(SENDER, "a@example.com", MESSAGE, following=(SENDER, "b@example.com"))
                b = await session.send(SENDER, "b@example.com", MESSAGE, following=(SENDER, "c@example.com"))
                c = await session.send(SENDER, "c@example.com", MESSAGE)
        finally:
            await pool.close()
    assert [r.outcome for r in (a, b, c)] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]
    assert (b.stage, b.code) == ("rcpt", 550)
    assert seen.count("Hello.\r\n") == 2


async def test_a_presented_envelope_not_sent_drops_the_connection(smtp: FaultSMTPServer) -> None:
    """b's envelope went out with a's data, then the session ended: the connection is dropped mid-DATA, b gets nothing; the pool goes on."""
    pool = SmtpPool(settings(smtp.port, pool_size=1))
    try:
        async with pool.session() as session:
            a = await session.send(SENDER, "a@example.com", MESSAGE, following=(SENDER, "b@example.com"))
        assert a.outcome == Outcome.SENT
        c = await pool.send(SENDER, "c@example.com", MESSAGE)
        assert c.outcome == Outcome.SENT
        await asyncio.sleep(0.2)
    finally:
        await pool.close()
    assert [m.recipient for m in smtp.accepted] == ["a@example.com", "c@example.com"]
    assert smtp.connections == 2


async def test_another_message_than_the_presented_one_takes_a_new_connection(smtp: FaultSMTPServer) -> None:
    """b presented, then c sent on the session instead: b's connection is dropped (b gets nothing) and c goes out on a new one."""
    pool = SmtpPool(settings(smtp.port))
    try:
        async with pool.session() as session:
            await session.send(SENDER, "a@example.com", MESSAGE, following=(SENDER, "b@example.com"))
            c = await session.send(SENDER, "c@example.com", MESSAGE)
        await asyncio.sleep(0.2)
    finally:
        await pool.close()
    assert c.outcome == Outcome.SENT
    assert [m.recipient for m in smtp.accepted] == ["a@example.com", "c@example.com"]
    assert smtp.connections == 2


async def test_a_421_to_the_data_closes_and_the_next_goes_on_a_new_connection(smtp: FaultSMTPServer) -> None:
    """421 to a's data with b presented: a deferred, the connection closed; b's send opens a new connection and b arrives once."""
    smtp.fail_data("a@example.com", "421 4.3.2 Shutting down")
    pool = SmtpPool(settings(smtp.port))
    try:
        async with pool.session() as session:
            a = await session.send(SENDER, "a@example.com", MESSAGE, following=(SENDER, "b@example.com"))
            b = await session.send(SENDER, "b@example.com", MESSAGE)
    finally:
        await pool.close()
    assert (a.outcome, a.code) == (Outcome.DEFERRED, 421)
    assert b.outcome == Outcome.SENT
    assert [m.recipient for m in smtp.accepted] == ["b@example.com"]
    assert smtp.connections == 2


async def test_without_pipelining_nothing_is_presented() -> None:
    """A server without PIPELINING: following is ignored, every command waits for its reply."""
    steps = [
        Step(["EHLO"], ["250 scripted"]),
        Step(["MAIL FROM:<"], ["250 OK"]),
        Step(["RCPT TO:<A@"], ["250 OK"]),
        Step(["DATA"], ["354 go"]),
        Step([], ["250 queued a"], data=True),
        Step(["MAIL FROM:<"], ["250 OK"]),
        Step(["RCPT TO:<B@"], ["250 OK"]),
        Step(["DATA"], ["354 go"]),
        Step([], ["250 queued b"], data=True),
        Step(["QUIT"], ["221 bye"]),
    ]
    async with scripted_server(steps) as (port, _):
        pool = SmtpPool(settings(port, command_timeout=2))
        try:
            async with pool.session() as session:
                a = await session.send(SENDER, "a@example.com", MESSAGE, following=(SENDER, "b@example.com"))
                b = await session.send(SENDER, "b@example.com", MESSAGE)
        finally:
            await pool.close()
    assert (a.reply, b.reply) == ("250 queued a", "250 queued b")
