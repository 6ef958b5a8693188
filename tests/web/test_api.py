"""The JSON API under /api, on SQLite and PostgreSQL: Bearer-token auth, the documented
routes and their shapes, keyset paging, and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailer.accounts.users import disable_user
from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.constants import FIXED_NOW
from tests.support.web import RAW_BOUNCE, api_token, app_for, seed_release


@pytest.fixture
def api(rt: Runtime) -> TestClient:
    """A client that sends a valid Bearer token."""
    token = api_token(rt)
    return TestClient(app_for(rt), headers={"Authorization": f"Bearer {token}"})


def test_no_token_is_401(rt: Runtime) -> None:
    """Without a token, with a malformed one, or with a disabled user's token, every route is 401."""
    token = api_token(rt)
    client = TestClient(app_for(rt))
    for path in ("/api/releases", "/api/releases/1", "/api/deliveries", "/api/suppressions", "/api/contacts/a@b.c"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers={"Authorization": "Bearer mlr_wrong"}).status_code == 401
    with transaction(rt.sessions) as session:
        disable_user(session, "robot@example.com", now=FIXED_NOW)
    assert client.get("/api/releases", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_session_cookie_is_not_an_api_credential(rt: Runtime) -> None:
    """A signed-in staff browser cannot call the API without a token (the API takes Bearer only)."""
    from tests.support.web import make_users, sign_in

    make_users(rt, [Role.ADMIN])
    client = sign_in(app_for(rt), Role.ADMIN)
    assert client.get("/api/releases").status_code == 401


def test_releases_detail_and_report(rt: Runtime, tmp_path: Path, api: TestClient) -> None:
    """Releases list, one release with segments and approvals, and its report by status, segment and domain."""
    seeded = seed_release(rt, tmp_path)
    listing = api.get("/api/releases").json()
    assert [r["id"] for r in listing["items"]] == [seeded.release_id]
    assert listing["items"][0]["status"] == "sent" and listing["next_after"] is None
    detail = api.get(f"/api/releases/{seeded.release_id}").json()
    assert detail["client"] == "harbor" and [s["slug"] for s in detail["segments"]] == ["press-all"]
    assert [a["approver"] for a in detail["approvals"]] == ["approver@example.com"]
    report = api.get(f"/api/releases/{seeded.release_id}/report").json()
    assert report["counts"] == {"sent": 2, "failed": 1}
    assert report["segments"] == {"press-all": {"sent": 2, "failed": 1}}
    assert api.get("/api/releases/999999").status_code == 404
    assert api.get("/api/releases/999999/report").status_code == 404


def test_deliveries_filters_and_keyset(rt: Runtime, tmp_path: Path, api: TestClient) -> None:
    """Deliveries filter like the log page and page with after/before."""
    seeded = seed_release(rt, tmp_path)
    failed = api.get("/api/deliveries", params={"status": "failed", "release": seeded.release_id}).json()
    assert [d["email"] for d in failed["items"]] == [seeded.bounced]
    assert failed["items"][0]["last_code"] == 550
    first = api.get("/api/deliveries", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_after"] == first["items"][-1]["id"]
    second = api.get("/api/deliveries", params={"limit": 2, "after": first["next_after"]}).json()
    assert [d["email"] for d in second["items"]] == [seeded.bounced]
    back = api.get("/api/deliveries", params={"limit": 2, "before": second["prev_before"]}).json()
    assert back["items"] == first["items"]
    assert api.get("/api/deliveries", params={"status": "nonsense"}).status_code == 422
    assert api.get("/api/deliveries", params={"limit": 0}).status_code == 422


def test_contact_and_suppressions(rt: Runtime, tmp_path: Path, api: TestClient) -> None:
    """A contact's history carries the bounce with its raw message; suppressions list and filter."""
    seeded = seed_release(rt, tmp_path)
    contact = api.get(f"/api/contacts/{seeded.bounced.upper()}").json()
    assert contact["email"] == seeded.bounced
    assert [e["raw"] for e in contact["events"]] == [RAW_BOUNCE]
    assert [s["reason"] for s in contact["suppressions"]] == ["hard_bounce"]
    assert api.get("/api/contacts/nobody@example.com").status_code == 404
    sups = api.get("/api/suppressions", params={"reason": "hard_bounce"}).json()
    assert [s["email"] for s in sups["items"]] == [seeded.bounced]
    assert api.get("/api/suppressions", params={"email": seeded.bounced}).json()["items"][0]["scope"] == "*"


WRITE_VERBS = ("submit", "approve", "request-changes", "schedule", "send-now", "cancel", "proof")


def test_openapi_documents_only_the_api(rt: Runtime) -> None:
    """/api/openapi.json lists the API routes with Bearer security, and no staff or unsubscribe pages."""
    schema = TestClient(app_for(rt)).get("/api/openapi.json").json()
    paths = set(schema["paths"])
    assert paths == {
        "/api/releases",
        "/api/releases/{release_id}",
        "/api/releases/{release_id}/report",
        "/api/deliveries",
        "/api/contacts/{email}",
        "/api/suppressions",
        "/api/releases/{release_id}/pause",
        "/api/releases/{release_id}/resume",
        # the write API (issue 21)
        *(f"/api/releases/{{release_id}}/{verb}" for verb in WRITE_VERBS),
        "/api/releases/{release_id}/correct",
        "/api/releases/{release_id}/withdraw",
    }
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "DeliveryPage" in schema["components"]["schemas"]
