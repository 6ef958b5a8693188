"""The engine sends each message's data with the next row's envelope (issue 20): about
one write a message; a row whose envelope went out but whose batch stopped goes back to
the queue unsent and unmarked, and is sent once later (both backends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp import client
from mailer.smtp.pool import PoolSession, SmtpPool
from mailer.smtp.transport import SendResult
from tests.support.engine import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer

pytestmark = pytest.mark.shared_smtp

EVERYONE = [Variant("press-all", "list:press")]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write the SMTP client makes, from now on."""
    seen: list[bytes] = []
    write = client.Connection._write

    async def counting(self: client.Connection, data: bytes) -> None:
        seen.append(data)
        await write(self, data)

    monkeypatch.setattr(client.Connection, "_write", counting)
    return seen


async def test_about_one_write_a_message(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, writes: list[bytes]
) -> None:
    """40 messages over 2 connections: well under the two writes a message (envelope, then data) of a client that does not chain."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=2, retry__batch_size=40)
    emails = [f"w{i:02d}@example.com" for i in range(40)]
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    pool = SmtpPool(ert.settings.smtp)
    try:
        await Dispatcher(ert, pool).run_once()
    finally:
        await pool.close()
    assert {(r.status, r.attempts) for r in deliveries(ert, rid).values()} == {("sent", 1)}
    assert sorted(a.recipient for a in smtp.accepted) == emails and smtp.duplicates() == []
    # EHLO, QUIT and the first envelope of each connection, then one write a message
    assert len(writes) <= 40 + 3 * 2 + 4, len(writes)


async def test_the_setting_off_sends_each_envelope_on_its_own(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, writes: list[bytes]
) -> None:
    """smtp.next_envelope_with_data = false: two writes a message (envelope, then data), everyone once."""
    ert = engine_runtime(
        rt, smtp.port, Clock(), smtp__pool_size=2, smtp__next_envelope_with_data=False, retry__batch_size=20
    )
    emails = [f"o{i:02d}@example.com" for i in range(20)]
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    pool = SmtpPool(ert.settings.smtp)
    try:
        await Dispatcher(ert, pool).run_once()
    finally:
        await pool.close()
    assert {(r.status, r.attempts) for r in deliveries(ert, rid).values()} == {("sent", 1)}
    assert sorted(a.recipient for a in smtp.accepted) == emails
    assert len(writes) >= 2 * 20, len(writes)


class StoppingPool(SmtpPool):
    """A pool whose sessions set ``stop`` right after a message whose data carried the
    next envelope: the batch stops with that envelope presented."""

    def __init__(self, settings: object, stop: asyncio.Event) -> None:
        super().__init__(settings)  # type: ignore[arg-type]
        self.stop = stop
        self.presented: list[str] = []

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PoolSession]:
        async with super().session() as held:
            send = held.send

            async def stopping(
                sender: str,
                recipient: str,
                data: bytes,
                *,
                before_data: Callable[[], Awaitable[None]] | None = None,
                following: tuple[str, str] | None = None,
            ) -> SendResult:
                result = await send(sender, recipient, data, before_data=before_data, following=following)
                if following is not None and not self.stop.is_set():
                    self.presented.append(following[1])
                    self.stop.set()
                return result

            held.send = stopping  # type: ignore[method-assign]
            yield held


async def test_a_stop_with_an_envelope_presented_hands_its_row_back(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Stopped right after a data that carried the next envelope: that row is queued, unattempted and unmarked, the sink never got it; the next run sends everyone once."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=1, retry__batch_size=10)
    emails = [f"s{i:02d}@example.com" for i in range(10)]
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    stop = asyncio.Event()
    pool = StoppingPool(ert.settings.smtp, stop)
    try:
        dispatcher = Dispatcher(ert, pool)
        dispatcher.plan_due()
        await dispatcher.drain(stop=stop)
    finally:
        await pool.close()
    assert len(pool.presented) == 1
    presented = pool.presented[0]
    await asyncio.sleep(0.2)  # the dropped connection reaches the server
    assert presented not in {a.recipient for a in smtp.accepted}
    row = deliveries(ert, rid)[presented]
    assert (row.status, row.attempts, row.in_data, row.lease_owner) == ("queued", 0, False, None)
    again = SmtpPool(ert.settings.smtp)
    try:
        await Dispatcher(ert, again).run_once()
    finally:
        await again.close()
    assert sorted(a.recipient for a in smtp.accepted) == emails and smtp.duplicates() == []
    assert {(r.status, r.attempts) for r in deliveries(ert, rid).values()} == {("sent", 1)}
