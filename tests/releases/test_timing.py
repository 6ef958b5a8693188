"""Safe timing (issue 21): past times refused everywhere, sending at once explicit, approval
without a send time, an earlier send time needs approval again, every change in history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.config import Settings, WebSettings
from mailer.domain.errors import InputError, WorkflowError
from mailer.message import Renderer
from mailer.releases import workflow
from mailer.releases.approval import approve_release
from mailer.releases.plan import renderer_for
from mailer.releases.source import parse_time
from mailer.runtime import Runtime
from mailer.store import deliveries as delivery_store
from mailer.store.db import transaction
from mailer.store.tables import Approval, Release, ReleaseEvent
from tests.support.constants import FIXED_NOW
from tests.support.releases import BASE_URL, RELEASE, create, seed, submit

NO_TIME = RELEASE.replace('send_at = "2027-12-01T09:00:00-05:00"\n', "")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def approve(rt: Runtime, renderer: Renderer, rid: int) -> None:
    with transaction(rt.sessions) as session:
        result = approve_release(
            session, rid, approver="quinn", renderer=renderer, settings=rt.settings, now=rt.clock()
        )
        assert result.refused is None


def status(rt: Runtime, rid: int) -> str:
    with transaction(rt.sessions) as session:
        release = session.get(Release, rid)
        assert release is not None
        return release.status


def notes(rt: Runtime, rid: int) -> list[str]:
    with transaction(rt.sessions) as session:
        return [e.note or "" for e in session.scalars(select(ReleaseEvent).where(ReleaseEvent.release_id == rid))]


def test_past_send_at_in_front_matter_is_refused(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """A release file whose send_at has passed is refused naming the key and the way to send at once."""
    seed(rt, tmp_path)
    past = RELEASE.replace("2027-12-01T09:00:00-05:00", "2026-11-24T09:00:00-05:00")
    with pytest.raises(InputError, match=r"^send_at: .* is in the past .*schedule ID --now"):
        create(rt, renderer, past)


def test_named_zone_in_front_matter(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """send_at = "2026-12-01 09:00 America/New_York" is stored as 14:00 UTC."""
    seed(rt, tmp_path)
    text = RELEASE.replace('"2027-12-01T09:00:00-05:00"', '"2026-12-01 09:00 America/New_York"')
    rid = create(rt, renderer, text)
    with transaction(rt.sessions) as session:
        release = session.get(Release, rid)
        assert release is not None and release.send_at is not None
        assert release.send_at.isoformat() == "2026-12-01T14:00:00+00:00"


def test_schedule_in_the_past_is_refused_and_now_is_explicit(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """schedule --at a past time is refused; --now sets the send time to now, recorded as "send now"."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, NO_TIME)
    with transaction(rt.sessions) as session:
        with pytest.raises(InputError, match=rf"^--at: .* is in the past .*schedule {rid} --now"):
            workflow.schedule(session, rid, at=FIXED_NOW - timedelta(hours=1), actor="pat", now=FIXED_NOW)
        with pytest.raises(InputError, match="give one of them"):
            workflow.schedule(session, rid, at=FIXED_NOW, send_now=True, actor="pat", now=FIXED_NOW)
        release = workflow.schedule(session, rid, at=None, send_now=True, actor="pat", now=FIXED_NOW)
        assert release.send_at == FIXED_NOW
    assert "send now" in notes(rt, rid)


def test_approved_without_a_time_waits_then_goes_when_scheduled(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """An approval without a send time is not due; scheduling it after needs no new approval."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, NO_TIME)
    submit(rt, renderer, rid)
    approve(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        assert delivery_store.due_release_ids(session, FIXED_NOW + timedelta(days=365)) == []
        approval = session.scalar(select(Approval).where(Approval.release_id == rid))
        assert approval is not None and approval.send_at is None and approval.render_digest
        assert approval.snapshot is not None and "Acme briefing" in approval.snapshot
        workflow.schedule(session, rid, at=FIXED_NOW + timedelta(hours=1), actor="pat", now=FIXED_NOW)
    assert status(rt, rid) == "approved"
    with transaction(rt.sessions) as session:
        assert delivery_store.due_release_ids(session, FIXED_NOW + timedelta(hours=1)) == [rid]


def test_moving_an_approved_time_earlier_needs_approval_again(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """Later keeps the approval; earlier than the approved time goes back to submitted (in the history); re-approval works."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    approve(rt, renderer, rid)
    approved_at = parse_time("2027-12-01T09:00:00-05:00", "x")
    with transaction(rt.sessions) as session:
        # (no later than the embargo, 10:00 New York: past it is refused, issue 16)
        workflow.schedule(session, rid, at=approved_at + timedelta(hours=1), actor="pat", now=FIXED_NOW)
    assert status(rt, rid) == "approved"
    with transaction(rt.sessions) as session:
        workflow.schedule(session, rid, at=approved_at + timedelta(minutes=30), actor="pat", now=FIXED_NOW)
    assert status(rt, rid) == "approved"  # still not earlier than what the approver saw
    with transaction(rt.sessions) as session:
        workflow.schedule(session, rid, at=approved_at - timedelta(days=1), actor="pat", now=FIXED_NOW)
    assert status(rt, rid) == "submitted"
    assert any("back to submitted, approval needed again" in n for n in notes(rt, rid))
    approve(rt, renderer, rid)
    assert status(rt, rid) == "approved"


def test_submit_of_an_approved_release_is_still_refused(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """approved → submitted exists for the scheduler and the engine; a person cannot submit an approved release."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    approve(rt, renderer, rid)
    with pytest.raises(WorkflowError, match="an approved release cannot become submitted"):
        submit(rt, renderer, rid)
