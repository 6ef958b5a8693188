"""What the engine decides from each reply, through its public entry (``Dispatcher``) and
the in-memory fake transport: no sockets, so the decision table is tested on its own; the
real clients against real servers are tested in tests/smtp/ and the rest of tests/engine/."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.suppressions import is_suppressed
from mailer.store.tables import Suppression
from tests.support.engine import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
    release_status,
)
from tests.support.fake_transport import FakeTransport

EVERYONE = [Variant("press-all", "list:press")]


async def send(rt: Runtime, tmp_path: Path, emails: list[str], fake: FakeTransport, **settings: object) -> int:
    """A release to ``emails``, one engine pass through ``fake``; returns the release id."""
    add_contacts(rt, tmp_path, emails)
    rid = approved_release(rt, EVERYONE)
    await Dispatcher(rt, fake).run_once()
    return rid


def runtime(rt: Runtime, **overrides: object) -> Runtime:
    return engine_runtime(rt, 25, Clock(), smtp__pool_size=1, **overrides)


async def test_unknown_user_at_rcpt_fails_and_suppresses(rt: Runtime, tmp_path: Path) -> None:
    """550 5.1.1 at RCPT: that row failed as a hard bounce and the address suppressed; the others sent; the release partial."""
    ert = runtime(rt)
    fake = FakeTransport()
    fake.reply("gone@example.com", 550, "5.1.1 No such user", stage="rcpt")
    rid = await send(ert, tmp_path, ["ann@example.com", "gone@example.com", "bob@example.net"], fake)
    rows = deliveries(ert, rid)
    assert (rows["gone@example.com"].status, rows["gone@example.com"].reason) == ("failed", "hard_bounce")
    assert rows["gone@example.com"].last_code == 550
    assert sorted(fake.recipients()) == ["ann@example.com", "bob@example.net"]
    assert {rows[e].status for e in fake.recipients()} == {"sent"}
    with transaction(ert.sessions) as session:
        assert is_suppressed(session, "gone@example.com")
        assert not is_suppressed(session, "ann@example.com")
    assert release_status(ert, rid) == "partial"


async def test_sender_refused_at_mail_requeues_and_pauses(rt: Runtime, tmp_path: Path) -> None:
    """553 5.1.8 at MAIL (our sender's domain): no row failed or counted as tried, nobody
    suppressed, every row back in the queue, the release paused with the reply as reason."""
    ert = runtime(rt)
    fake = FakeTransport()
    fake.reply_to_mail(553, "5.1.8 <bounces@example.org>: Sender address rejected: Domain not found")
    rid = await send(ert, tmp_path, [f"r{i}@example.com" for i in range(5)], fake)
    rows = deliveries(ert, rid)
    assert {(r.status, r.attempts) for r in rows.values()} == {("queued", 0)}
    assert fake.sent == []
    assert release_status(ert, rid) == "paused"
    with transaction(ert.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0


async def test_temporary_refusal_defers_with_a_next_attempt(rt: Runtime, tmp_path: Path) -> None:
    """451 4.3.0 at DATA and 452 4.2.2 at RCPT: both rows deferred with a later next attempt,
    not failed, not suppressed; one attempt counted each."""
    ert = runtime(rt)
    fake = FakeTransport()
    fake.reply("busy@example.com", 451, "4.3.0 Try again later", stage="data")
    fake.reply("full@example.com", 452, "4.2.2 Mailbox full", stage="rcpt")
    rid = await send(ert, tmp_path, ["busy@example.com", "full@example.com", "ann@example.com"], fake)
    rows = deliveries(ert, rid)
    now = ert.clock()
    for email in ("busy@example.com", "full@example.com"):
        row = rows[email]
        assert (row.status, row.attempts) == ("deferred", 1), email
        assert row.next_attempt_at is not None and row.next_attempt_at.replace(tzinfo=None) > now.replace(tzinfo=None)
    assert rows["ann@example.com"].status == "sent"
    with transaction(ert.sessions) as session:
        assert not is_suppressed(session, "full@example.com")


async def test_connection_lost_after_the_data_is_unknown_and_not_resent(rt: Runtime, tmp_path: Path) -> None:
    """The connection dies after the data: the row is ``unknown`` and a second pass does not send it again."""
    ert = runtime(rt)
    fake = FakeTransport()
    fake.lose_after_data("lost@example.com")
    rid = await send(ert, tmp_path, ["lost@example.com"], fake)
    assert deliveries(ert, rid)["lost@example.com"].status == "unknown"
    await Dispatcher(ert, fake).run_once()
    assert [r for r, _ in fake.results] == ["lost@example.com"]


async def test_fake_scripts_count_down_then_accept() -> None:
    """The fake itself: a reply scripted twice answers twice, then the message is accepted and recorded."""
    fake = FakeTransport()
    fake.reply("a@example.com", 421, "4.7.0 Try later", stage="connect", times=2)
    codes = [(await fake.send("s@example.org", "a@example.com", b"x")).code for _ in range(3)]
    assert codes == [421, 421, 250]
    assert [s.recipient for s in fake.sent] == ["a@example.com"]
