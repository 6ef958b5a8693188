"""The cadence cap: a journalist over the firm-wide limit is recorded ``capped`` with the
reason, an approver lifts it for one release, corrections are never capped, the window
slides, and two workers planning at once still cap (both databases; the race on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from mailer.engine.dispatch import Dispatcher
from mailer.releases import cadence, threads
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import ReleaseEvent
from tests.support.conversations import CORRECTION, EVERYONE, approve, messages_to
from tests.support.engine import (
    Clock,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
    release_status,
)
from tests.support.fake_transport import FakeTransport

BOTH = ["ann@example.com", "bob@example.com"]


def capped_runtime(rt: Runtime, clock: Clock | None = None) -> Runtime:
    return engine_runtime(rt, 25, clock or Clock(), smtp__pool_size=1, cadence__max_per_contact=1)


async def test_second_release_within_the_window_is_capped_then_lifted(rt: Runtime, tmp_path: Path) -> None:
    """Cap 1 per 24 h: the second release caps the two who got the first (reason recorded), sends
    to the newcomer, finishes sent; an approver lifts the cap and the two get it then."""
    ert = capped_runtime(rt)
    fake = FakeTransport()
    add_contacts(ert, tmp_path, BOTH)
    approved_release(ert, EVERYONE)
    await Dispatcher(ert, fake).run_once()
    add_contacts(ert, tmp_path, ["cat@example.com"])
    second = approved_release(ert, EVERYONE)
    await Dispatcher(ert, fake).run_once()
    rows = deliveries(ert, second)
    assert {a: r.status for a, r in rows.items()} == {
        "ann@example.com": "capped",
        "bob@example.com": "capped",
        "cat@example.com": "sent",
    }
    assert rows["ann@example.com"].reason == "cadence cap: 1 per 24h"
    assert release_status(ert, second) == "sent"
    with transaction(ert.sessions) as session:
        assert cadence.lift_cap(session, second, actor="approver2", now=ert.clock(), note="urgent") == 2
    assert release_status(ert, second) == "sending"
    before = len(fake.sent)
    await Dispatcher(ert, fake).run_once()
    assert sorted(messages_to(fake, before)) == BOTH
    assert release_status(ert, second) == "sent"
    with transaction(ert.sessions) as session:
        notes = list(session.scalars(select(ReleaseEvent.note).where(ReleaseEvent.release_id == second)))
    assert any(n and n.startswith("cadence cap lifted by approver2: urgent") for n in notes)


async def test_cap_lifted_before_sending_caps_nobody(rt: Runtime, tmp_path: Path) -> None:
    """Lifted while still approved: the release is planned without the cap."""
    ert = capped_runtime(rt)
    fake = FakeTransport()
    add_contacts(ert, tmp_path, BOTH)
    approved_release(ert, EVERYONE)
    await Dispatcher(ert, fake).run_once()
    second = approved_release(ert, EVERYONE)
    with transaction(ert.sessions) as session:
        assert cadence.lift_cap(session, second, actor="approver2", now=ert.clock()) == 0
    await Dispatcher(ert, fake).run_once()
    assert {r.status for r in deliveries(ert, second).values()} == {"sent"}


async def test_corrections_are_never_capped_and_the_window_slides(rt: Runtime, tmp_path: Path) -> None:
    """A correction reaches everyone who got the original although over the cap; 25 h later a
    new release is not capped."""
    clock = Clock()
    ert = capped_runtime(rt, clock)
    fake = FakeTransport()
    add_contacts(ert, tmp_path, BOTH)
    original = approved_release(ert, EVERYONE)
    await Dispatcher(ert, fake).run_once()
    with transaction(ert.sessions) as session:
        cid = threads.correct(
            session,
            original,
            CORRECTION,
            author="pat",
            renderer=renderer_for(ert.settings),
            settings=ert.settings,
            now=ert.clock(),
        ).id
    approve(ert, cid)
    await Dispatcher(ert, fake).run_once()
    assert {r.status for r in deliveries(ert, cid).values()} == {"sent"}
    clock.advance(25 * 3600)
    later = approved_release(ert, EVERYONE)
    await Dispatcher(ert, fake).run_once()
    assert {r.status for r in deliveries(ert, later).values()} == {"sent"}
