"""A send time moved past the release's embargo is refused on every path that moves it
(issue 16: submit refused an embargo earlier than send_at, but a later reschedule of the
approved release was not checked): the workflow, the CLI, the API and the staff form."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailer.accounts.api_tokens import TokenScope, issue_token
from mailer.accounts.users import add_user
from mailer.config import Settings, WebSettings
from mailer.domain.errors import WorkflowError
from mailer.domain.states import Role
from mailer.message import Renderer
from mailer.releases import workflow
from mailer.releases.approval import approve_release
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.web import create_app
from tests.support.cli import run_proc
from tests.support.constants import FIXED_NOW
from tests.support.releases import BASE_URL, create, seed, submit
from tests.support.web import app_for, csrf, make_users, sign_in

#: RELEASE's send time and embargo (2027-12-01 09:00 and 10:00 in New York), in UTC.
SEND_AT = datetime(2027, 12, 1, 14, 0, tzinfo=UTC)
EMBARGO = datetime(2027, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def approved(rt: Runtime, renderer: Renderer, tmp_path: Path) -> int:
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        approve_release(session, rid, approver="quinn", renderer=renderer, settings=rt.settings, now=rt.clock())
    return rid


def state(rt: Runtime, rid: int) -> tuple[str, datetime | None]:
    with transaction(rt.sessions) as session:
        release = release_store.get_release(session, rid)
        return release.status, release.send_at


def test_rescheduling_an_approved_release_past_its_embargo_is_refused(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """schedule() after the embargo raises WorkflowError naming both times; send_at and status stay; up to it is fine."""
    rid = approved(rt, renderer, tmp_path)
    with transaction(rt.sessions) as session, pytest.raises(WorkflowError) as refused:
        workflow.schedule(session, rid, at=EMBARGO.replace(minute=30), actor="pat", now=rt.clock())
    assert str(refused.value) == (
        f"release {rid}: embargo 2027-12-01 15:00 UTC is earlier than send_at 2027-12-01 15:30 UTC: "
        "move the embargo later or send earlier"
    )
    assert state(rt, rid) == ("approved", SEND_AT)
    with transaction(rt.sessions) as session:
        workflow.schedule(session, rid, at=EMBARGO, actor="pat", now=rt.clock())  # at the lift itself: allowed
    assert state(rt, rid) == ("approved", EMBARGO)


def test_a_submitted_release_cannot_be_moved_past_its_embargo_a_draft_can(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """After submit the move is refused (no later check); a draft may move (submit refuses it then)."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    late = datetime(2028, 1, 1, tzinfo=UTC)
    submit(rt, renderer, rid)
    with transaction(rt.sessions) as session, pytest.raises(WorkflowError, match="is earlier than send_at"):
        workflow.schedule(session, rid, at=late, actor="pat", now=rt.clock())
    assert state(rt, rid) == ("submitted", SEND_AT)
    draft = create(rt, renderer)
    with transaction(rt.sessions) as session:
        workflow.schedule(session, draft, at=late, actor="pat", now=rt.clock())
    with pytest.raises(WorkflowError, match="is earlier than send_at 2028-01-01 00:00 UTC"):
        submit(rt, renderer, draft)


def test_the_cli_refuses_it_in_one_line(rt: Runtime, renderer: Renderer, env: dict[str, str], tmp_path: Path) -> None:
    """`mailer releases schedule ID --at` past the embargo exits non-zero with one line; nothing changes."""
    rid = approved(rt, renderer, tmp_path)
    result = run_proc(env, "releases", "schedule", str(rid), "--at", "2027-12-01 11:00 America/New_York")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "embargo 2027-12-01 15:00 UTC is earlier than send_at 2027-12-01 16:00 UTC" in lines[0]
    assert state(rt, rid) == ("approved", SEND_AT)


def test_the_api_and_the_staff_form_refuse_it(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """POST /api/releases/ID/schedule answers 409 with the reason; the release page's form shows it as its error."""
    rid = approved(rt, renderer, tmp_path)
    with transaction(rt.sessions) as session:
        add_user(session, "pub@example.com", role=Role.PUBLICIST, password=None, now=FIXED_NOW)
        token = issue_token(session, "pub@example.com", scope=TokenScope("write"))
    api = TestClient(app_for(rt), headers={"Authorization": f"Bearer {token}"})
    refused = api.post(f"/api/releases/{rid}/schedule", json={"at": "2027-12-01 10:01 America/New_York"})
    assert refused.status_code == 409, refused.text
    assert "is earlier than send_at 2027-12-01 15:01 UTC" in refused.json()["detail"]
    make_users(rt, [Role.PUBLICIST])
    # the staff pages on plain http (the test client): their cookies are not marked secure
    staff = sign_in(create_app(rt.settings.model_copy(update={"web": WebSettings()}), clock=rt.clock), Role.PUBLICIST)
    form = staff.post(
        f"/releases/{rid}/actions/schedule", data={"csrftoken": csrf(staff), "send_at": "2027-12-02T09:00"}
    )
    assert form.status_code == 409
    assert "is earlier than send_at" in form.context["error"]  # type: ignore[attr-defined]
    assert state(rt, rid) == ("approved", SEND_AT)
