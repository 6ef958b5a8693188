"""Claiming ahead (issue 20): while a batch is sent the next one is already claimed; a
release paused (or a stop) before that batch's turn never sends it and hands its rows
back; nothing is lost or sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailer.engine.dispatch import Dispatcher
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.smtp.transport import SendResult
from mailer.store import queue as delivery_queue
from mailer.store.db import transaction
from tests.support.conversations import EVERYONE
from tests.support.engine import Clock, add_contacts, approved_release, deliveries, engine_runtime, release_status
from tests.support.fake_transport import FakeTransport

PEOPLE = [f"p{i:02d}@example.com" for i in range(12)]


class HookedTransport(FakeTransport):
    """A fake transport that calls ``hook(n)`` before answering its n-th message (1-based)."""

    def __init__(self, hook: Callable[[int], None]) -> None:
        super().__init__()
        self.hook = hook
        self.count = 0

    async def send(
        self, sender: str, recipient: str, data: bytes, *, before_data: Callable[[], Awaitable[None]] | None = None
    ) -> SendResult:
        self.count += 1
        self.hook(self.count)
        return await super().send(sender, recipient, data, before_data=before_data)


def _setup(rt: Runtime, tmp_path: Path) -> tuple[Runtime, int]:
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1, retry__batch_size=4)
    add_contacts(ert, tmp_path, PEOPLE)
    return ert, approved_release(ert, EVERYONE)


def _claims(monkeypatch: pytest.MonkeyPatch, transport: FakeTransport) -> list[tuple[int, int]]:
    """Records (messages accepted so far, rows claimed) at every claim."""
    seen: list[tuple[int, int]] = []
    claim = delivery_queue.claim_batch

    def recording(*args: object, **kwargs: object) -> list[delivery_queue.Claimed]:
        rows = claim(*args, **kwargs)  # type: ignore[arg-type]
        seen.append((len(transport.sent), len(rows)))
        return rows

    monkeypatch.setattr(delivery_queue, "claim_batch", recording)
    return seen


def _pause(rt: Runtime, rid: int) -> None:
    with transaction(rt.sessions) as session:
        workflow.pause(session, rid, actor="staff@example.com", now=rt.clock())


async def test_the_next_batch_is_claimed_while_one_is_sent(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 rows in batches of 4, a slow relay: each next batch is claimed before the one before it is done; all sent once."""
    ert, rid = _setup(rt, tmp_path)
    fake = FakeTransport(delay=0.05)
    claims = _claims(monkeypatch, fake)
    dispatcher = Dispatcher(ert, fake)
    dispatcher.plan_due()
    assert await dispatcher.drain() == 12
    assert sorted(fake.recipients()) == PEOPLE
    assert [n for _, n in claims] == [4, 4, 4, 0]
    assert [sent for sent, _ in claims[1:3]] == [0, 4]  # claimed ahead, before the batch before was sent
    assert {r.status for r in deliveries(ert, rid).values()} == {"sent"}


async def test_a_batch_claimed_ahead_is_not_sent_once_its_release_is_paused(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused by staff while the last message of the first batch is sent (too late for that batch to notice): the batch claimed ahead is not sent, its rows are queued again with no lease; resumed, every row goes exactly once."""
    ert, rid = _setup(rt, tmp_path)
    fake = HookedTransport(lambda n: _pause(ert, rid) if n == 4 else None)
    claims = _claims(monkeypatch, fake)
    dispatcher = Dispatcher(ert, fake)
    dispatcher.plan_due()
    assert await dispatcher.drain() == 4
    assert claims[1][1] == 4 and claims[1][0] < 4  # the second batch was claimed before the pause
    sent = fake.recipients()
    assert len(sent) == 4
    rows = deliveries(ert, rid)
    assert {(r.status, r.lease_owner, r.attempts) for e, r in rows.items() if e not in sent} == {("queued", None, 0)}
    assert release_status(ert, rid) == "paused"
    with transaction(ert.sessions) as session:
        workflow.resume(session, rid, actor="staff@example.com", now=ert.clock())
    fake.hook = lambda n: None
    await dispatcher.drain()
    assert sorted(fake.recipients()) == PEOPLE
    assert {r.status for r in deliveries(ert, rid).values()} == {"sent"}


async def test_a_stop_during_a_batch_drops_the_batch_claimed_ahead(rt: Runtime, tmp_path: Path) -> None:
    """A stop while the first batch is sent: drain returns, the rows not sent (the batch claimed ahead too) are queued with no lease; the next run sends them, each once."""
    ert, rid = _setup(rt, tmp_path)
    stop = asyncio.Event()
    fake = HookedTransport(lambda n: stop.set() if n == 2 else None)
    dispatcher = Dispatcher(ert, fake)
    dispatcher.plan_due()
    await dispatcher.drain(stop=stop)
    sent = fake.recipients()
    assert 2 <= len(sent) < 4
    rows = deliveries(ert, rid)
    assert {(r.status, r.lease_owner) for e, r in rows.items() if e not in sent} == {("queued", None)}
    fake.hook = lambda n: None
    await dispatcher.drain()
    assert sorted(fake.recipients()) == PEOPLE
    assert {(r.status, r.attempts) for r in deliveries(ert, rid).values()} == {("sent", 1)}
