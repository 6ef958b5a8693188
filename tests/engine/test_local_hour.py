"""Local-hour delivery: `send_at_local = "2026-12-02 09:00"` goes out in waves at 09:00 in each
contact's zone (missing or invalid zone: the release's), at the right UTC instants under an
injected clock; the report shows the waves; two workers share the waves without a duplicate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailer.engine.dispatch import Dispatcher
from mailer.releases.source import parse_release
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.ledger.report import release_report
from tests.support.conversations import WAVES, local_release
from tests.support.engine import Clock, deliveries, engine_runtime, release_status
from tests.support.fake_transport import FakeTransport


def test_front_matter_sets_the_first_wave_as_send_at() -> None:
    """send_at_local is stored as written; send_at becomes the first instant any zone reaches it (UTC+14)."""
    parsed = parse_release(
        '+++\ntitle = "t"\nclient = "c"\nsubject = "s"\ntemplate = "press_release"\nsegments = ["a"]\n'
        'send_at_local = "2026-12-02 09:00"\ntimezone = "America/Chicago"\n+++\nBody\n'
    )
    assert (parsed.send_at_local, parsed.timezone) == ("2026-12-02 09:00", "America/Chicago")
    assert parsed.send_at == datetime(2026, 12, 1, 19, 0, tzinfo=UTC)


async def test_waves_go_at_the_local_hour_of_each_contact(rt: Runtime, tmp_path: Path) -> None:
    """Planned at the first wave's time, each contact is sent at 09:00 their time (invalid or
    missing zone: London's), never before; the report shows four waves; the release ends sent."""
    clock = Clock(datetime(2026, 12, 1, 18, 0, tzinfo=UTC))
    ert = engine_runtime(rt, 25, clock, smtp__pool_size=1)
    fake = FakeTransport()
    rid = local_release(ert, tmp_path)
    assert await Dispatcher(ert, fake).run_once() == 0  # not due yet
    clock.now = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)
    await Dispatcher(ert, fake).run_once()  # planned; nobody's 09:00 yet
    assert fake.recipients() == []
    with transaction(ert.sessions) as session:
        report = release_report(session, rid)
    assert [(w.at, w.total) for w in report.waves] == [(at, len(who)) for at, who in WAVES.items()]
    seen: list[str] = []
    for at, who in WAVES.items():
        clock.now = at - timedelta(minutes=1)
        await Dispatcher(ert, fake).run_once()
        assert sorted(fake.recipients()) == sorted(seen), f"sent early before {at}"
        clock.now = at
        await Dispatcher(ert, fake).run_once()
        seen += who
        assert sorted(fake.recipients()) == sorted(seen), at
        assert release_status(ert, rid) == ("sent" if at == max(WAVES) else "sending")
    assert {r.status for r in deliveries(ert, rid).values()} == {"sent"}


async def test_two_workers_share_the_waves(rt: Runtime, tmp_path: Path) -> None:
    """Two workers run at each wave's instant: every contact gets exactly one copy, at its wave."""
    clock = Clock(datetime(2026, 12, 1, 19, 0, tzinfo=UTC))
    ert = engine_runtime(rt, 25, clock, smtp__pool_size=1, retry__batch_size=1)
    fakes = [FakeTransport(), FakeTransport()]
    rid = local_release(ert, tmp_path)
    for at, who in WAVES.items():
        clock.now = at
        before = sum(len(f.sent) for f in fakes)
        await asyncio.gather(*(Dispatcher(ert, f).run_once() for f in fakes))
        assert sum(len(f.sent) for f in fakes) - before == len(who), at
    everyone = sorted(r for f in fakes for r in f.recipients())
    assert everyone == sorted(r for who in WAVES.values() for r in who)
    assert release_status(ert, rid) == "sent"
