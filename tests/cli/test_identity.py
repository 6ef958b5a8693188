"""Who `--as` may be (issue 21, problem 2): with no accounts any name; once accounts exist,
every command that changes a release needs an active user whose role may do it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.accounts import users
from mailer.cli import app
from mailer.config import Settings, WebSettings
from mailer.domain.errors import NotFoundError, WorkflowError
from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.cli import run_json
from tests.support.releases import BASE_URL, RELEASE, seed

LATER = "2027-12-03 09:00 America/New_York"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def draft(rt: Runtime, env: dict[str, str], tmp_path: Path) -> str:
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    return str(run_json("releases", "create", str(path), "--as", "pat@example.com")["id"])  # type: ignore[index]


def refused(*args: str) -> BaseException:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code != 0 and result.exception is not None, result.output
    return result.exception


def test_without_accounts_any_name_schedules(draft: str) -> None:
    """A fresh install: --as is taken as given, and a named zone is accepted."""
    scheduled = run_json("releases", "schedule", draft, "--at", LATER, "--as", "anyone")
    assert scheduled["send_at"] == "2027-12-03T09:00:00-05:00"  # type: ignore[index]


def test_with_accounts_every_control_checks_the_user(rt: Runtime, draft: str) -> None:
    """Unknown names, an approver scheduling, a publicist pausing or cancelling another's draft are refused."""
    with transaction(rt.sessions) as session:
        for email, role in (("pub@example.com", Role.PUBLICIST), ("appr@example.com", Role.APPROVER)):
            users.add_user(session, email, role=role, password=None, now=datetime.now(UTC))
    assert isinstance(refused("releases", "schedule", draft, "--at", LATER, "--as", "nobody"), NotFoundError)
    error = refused("releases", "schedule", draft, "--at", LATER, "--as", "appr@example.com")
    assert isinstance(error, WorkflowError) and "is an approver and cannot schedule" in str(error)
    assert "cannot pause" in str(refused("releases", "pause", draft, "--as", "pub@example.com"))
    assert "cannot cancel this release" in str(refused("releases", "cancel", draft, "--as", "pub@example.com"))
    ok = run_json("releases", "schedule", draft, "--at", LATER, "--as", "Pub@Example.com")
    assert ok["status"] == "draft"  # type: ignore[index]


def test_request_changes_sends_back_to_draft_with_the_note(rt: Runtime, draft: str) -> None:
    """`releases request-changes` by a second person: back to draft; the note is in the history."""
    run_json("releases", "submit", draft, "--as", "pat@example.com")
    back = run_json("releases", "request-changes", draft, "--note", "Cut the second question.", "--as", "quinn")
    assert back["status"] == "draft"  # type: ignore[index]
    shown = run_json("releases", "show", draft)
    assert shown["history"][-1]["note"] == "changes requested: Cut the second question."  # type: ignore[index]


def test_schedule_now_names_the_audience_and_past_is_refused(draft: str) -> None:
    """`schedule --now` says how many it goes to; `--at` in the past exits with one line saying so."""
    now = run_json("releases", "schedule", draft, "--now")
    assert now["audience"] == 2 and now["status"] == "draft"  # type: ignore[index]
    error = refused("releases", "schedule", draft, "--at", "2020-01-01 09:00 Europe/London")
    assert "is in the past" in str(error) and f"schedule {draft} --now" in str(error)
