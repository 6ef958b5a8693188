"""The late-send limit: an approved release not started by its ``not_after`` is not sent;
it waits, with the reason shown, until a person runs `releases confirm-late`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from mailer.cli import app
from mailer.domain.errors import InputError, MailerError, WorkflowError
from mailer.engine.dispatch import Dispatcher
from mailer.releases import workflow
from mailer.releases.source import parse_release
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store.db import transaction
from mailer.store.tables import Approval, Release, ReleaseEvent
from tests.support.constants import FIXED_NOW
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime, release_status
from tests.support.faultsmtp import FaultSMTPServer

PEOPLE = ["ann@example.com", "bob@example.net", "cy@example.org"]


def cli(rt: Runtime, *args: str, fails: type[MailerError] | None = None) -> Any:
    """The CLI in-process against the test database: the parsed JSON output, the result,
    or (``fails``) the error of that type it raised (the entry point prints it as one line)."""
    env = {
        "MAILER_DATABASE__URL": rt.settings.database.url,
        "MAILER_USER": "staff@example.com",
        "MAILER_SENDER__NOT_AFTER_HOURS": str(rt.settings.sender.not_after_hours),
    }
    result = CliRunner().invoke(app, list(args), env=env)
    if fails is not None:
        assert isinstance(result.exception, fails), (result.output, result.exception)
        return result.exception
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout) if "--json" in args else result


def approved_at(rt: Runtime, release_id: int, when: Any) -> None:
    with transaction(rt.sessions) as session:
        session.execute(update(Approval).where(Approval.release_id == release_id).values(approved_at=when))


async def test_release_three_days_late_waits_for_a_person(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Send time 3 days ago (approved before it): nothing is sent, `show` says why; after confirm-late it goes."""
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data")
    add_contacts(ert, tmp_path, PEOPLE)
    rid = approved_release(ert, [Variant("press-all", "list:press")], send_at=FIXED_NOW - timedelta(days=3))
    approved_at(ert, rid, FIXED_NOW - timedelta(days=4))
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await Dispatcher(ert, pool).run_once()  # a second tick holds nothing twice
    assert smtp.accepted == [] and release_status(ert, rid) == "approved"

    shown = cli(ert, "releases", "show", str(rid), "--json")
    assert shown["not_after"] == "2026-11-23T09:00:00+00:00"
    assert shown["waiting"] == (
        "late: not started by 2026-11-23 09:00 UTC (its not_after); nothing was sent. "
        f"To send it now: `mailer releases confirm-late {rid}`; or cancel it"
    )
    assert [h["note"] for h in shown["history"]] == [f"held: {shown['waiting']}"]
    text = cli(ert, "releases", "show", str(rid)).stdout
    assert "waiting" in text and "late: not started by" in text
    refused = cli(ert, "releases", "resume", str(rid), fails=WorkflowError)
    assert "only a paused release resumes; it waits: late:" in str(refused)

    confirmed = cli(ert, "releases", "confirm-late", str(rid), "--json")
    assert confirmed["confirmed_by"] == "staff@example.com" and confirmed["status"] == "approved"
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert sorted(a.recipient for a in smtp.accepted) == sorted(PEOPLE)
    assert release_status(ert, rid) == "sent"
    with transaction(ert.sessions) as session:
        notes = [e.note or "" for e in session.query(ReleaseEvent).filter_by(release_id=rid).order_by(ReleaseEvent.id)]
    assert notes[1].startswith("confirmed a late start (was held: late:")


async def test_on_time_and_unlimited_releases_are_not_held(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Within the window it goes; with not_after_hours = 0 a late release goes too; without a send time, no limit."""
    clock = Clock()
    ert = engine_runtime(rt, smtp.port, clock, paths__data_dir=tmp_path / "data")
    add_contacts(ert, tmp_path, PEOPLE)
    on_time = approved_release(ert, [Variant("press-all", "list:press")], send_at=FIXED_NOW - timedelta(hours=23))
    no_time = approved_release(ert, [Variant("press-all", "list:press")])
    approved_at(ert, no_time, FIXED_NOW - timedelta(days=30))
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    assert release_status(ert, on_time) == "sent" and release_status(ert, no_time) == "sent"

    unlimited = engine_runtime(rt, smtp.port, clock, paths__data_dir=tmp_path / "data", sender__not_after_hours=0)
    late = approved_release(unlimited, [Variant("press-all", "list:press")], send_at=FIXED_NOW - timedelta(days=3))
    approved_at(unlimited, late, FIXED_NOW - timedelta(days=4))
    await Dispatcher(unlimited, pool).run_once()
    await pool.close()
    assert release_status(unlimited, late) == "sent"


async def test_release_own_not_after_from_schedule(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """A not_after set (when it was still ahead) an hour after a send time two hours ago: held
    although the default window is 24 h; a --not-after already past is refused (issue 21)."""
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data")
    add_contacts(ert, tmp_path, PEOPLE)
    rid = approved_release(ert, [Variant("press-all", "list:press")], send_at=FIXED_NOW - timedelta(hours=2))
    approved_at(ert, rid, FIXED_NOW - timedelta(days=1))
    limit = FIXED_NOW - timedelta(hours=1)
    with transaction(ert.sessions) as session:
        then = FIXED_NOW - timedelta(hours=3)
        scheduled = workflow.schedule(session, rid, at=None, not_after=limit, actor="staff@example.com", now=then)
        assert scheduled.not_after == limit and scheduled.status == "approved"
    past = cli(ert, "releases", "schedule", str(rid), "--not-after", limit.isoformat(), fails=InputError)
    assert "is in the past" in str(past)
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert smtp.accepted == [] and release_status(ert, rid) == "approved"
    with transaction(ert.sessions) as session:
        release = session.get(Release, rid)
        assert release is not None and (release.hold_reason or "").startswith("late: not started by 2026-11-25 08:00")
    with transaction(ert.sessions) as session, pytest.raises(InputError, match="is not after send_at"):
        workflow.schedule(
            session,
            rid,
            at=None,
            not_after=FIXED_NOW - timedelta(hours=3),
            actor="staff",
            now=FIXED_NOW - timedelta(days=1),
        )


def test_front_matter_not_after_is_checked_and_kept() -> None:
    """The front matter's not_after is parsed with its zone; one not after send_at is refused naming the key."""
    head = '+++\ntitle = "t"\nclient = "c"\nsubject = "s"\ntemplate = "press_release"\nsegments = ["a"]\n'
    good = parse_release(head + 'send_at = "2026-12-01T09:00:00-05:00"\nnot_after = 2026-12-01T18:00:00Z\n+++\nBody.\n')
    assert good.not_after is not None and good.not_after.isoformat() == "2026-12-01T18:00:00+00:00"
    with pytest.raises(InputError, match=r"^not_after: not_after 2026-12-01T13:00:00"):
        parse_release(head + 'send_at = "2026-12-01T09:00:00-05:00"\nnot_after = 2026-12-01T13:00:00Z\n+++\nBody.\n')
