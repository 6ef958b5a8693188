"""The write API (issue 21): create, update, submit, request changes, approve by a second
person, schedule (named zone, never past), send now, cancel; role and scope checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailer.accounts.api_tokens import TokenScope, issue_token
from mailer.accounts.users import add_user
from mailer.config import Settings, WebSettings
from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.constants import FIXED_NOW
from tests.support.releases import BASE_URL, RELEASE, seed
from tests.support.web import app_for


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


def client_for(rt: Runtime, email: str, role: Role, scope: str = "write") -> TestClient:
    with transaction(rt.sessions) as session:
        add_user(session, email, role=role, password=None, now=FIXED_NOW)
        token = issue_token(session, email, scope=TokenScope(scope))
    return TestClient(app_for(rt), headers={"Authorization": f"Bearer {token}"})


def test_the_whole_workflow_through_the_api(rt: Runtime, tmp_path: Path) -> None:
    """Publicist creates and submits; approver asks for changes; publicist edits; approver approves; publicist schedules."""
    seed(rt, tmp_path)
    pub = client_for(rt, "pub@example.com", Role.PUBLICIST)
    appr = client_for(rt, "appr@example.com", Role.APPROVER)
    created = pub.post("/api/releases", json={"source": RELEASE})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert pub.post(f"/api/releases/{rid}/submit").json()["status"] == "submitted"
    back = appr.post(f"/api/releases/{rid}/request-changes", json={"note": "Shorter intro."})
    assert back.json()["status"] == "draft"
    edited = pub.put(f"/api/releases/{rid}", json={"source": RELEASE.replace("Dear", "Hello")})
    assert edited.status_code == 200 and edited.json()["status"] == "draft"
    assert pub.post(f"/api/releases/{rid}/submit").status_code == 200
    assert pub.post(f"/api/releases/{rid}/approve").status_code == 403  # a publicist may not approve
    approved = appr.post(f"/api/releases/{rid}/approve")
    assert approved.json()["status"] == "approved", approved.text
    again = appr.post(f"/api/releases/{rid}/request-changes", json={"note": "Too late."})
    assert again.status_code == 409  # changes are requested while submitted only
    past = pub.post(f"/api/releases/{rid}/schedule", json={"at": "2026-11-01 09:00 America/New_York"})
    assert past.status_code == 422 and "is in the past" in past.json()["detail"]
    # later, still before the embargo (10:00 New York): past it would be refused (issue 16)
    later = pub.post(f"/api/releases/{rid}/schedule", json={"at": "2027-12-01 09:30 America/New_York"})
    assert later.json()["send_at"] == "2027-12-01T14:30:00Z"
    now = pub.post(f"/api/releases/{rid}/send-now")
    assert now.json()["status"] == "submitted" and now.json()["audience"] == 2  # earlier: approval again


def test_scope_role_and_validation(rt: Runtime, tmp_path: Path) -> None:
    """A read token is 403, a viewer is 403, a bad file is 422 naming the key, an unknown release 404."""
    seed(rt, tmp_path)
    reader = client_for(rt, "read@example.com", Role.ADMIN, scope="read")
    assert reader.post("/api/releases", json={"source": RELEASE}).status_code == 403
    viewer = client_for(rt, "view@example.com", Role.VIEWER)
    assert viewer.post("/api/releases", json={"source": RELEASE}).status_code == 403
    admin = client_for(rt, "admin@example.com", Role.ADMIN)
    bad = admin.post("/api/releases", json={"source": RELEASE.replace('client = "acme"', 'client = "nope"')})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("client: no client 'nope'")
    assert admin.post("/api/releases/999/submit").status_code == 404
