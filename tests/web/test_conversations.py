"""Correcting and withdrawing a release from the staff pages and the API: the new draft is
linked to the original, the original's pending rows are cancelled, roles are enforced."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.accounts.api_tokens import TokenScope, issue_token
from mailer.accounts.users import add_user
from mailer.domain.states import ReleaseStatus, Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Delivery, Release
from tests.support.constants import FIXED_NOW
from tests.support.conversations import CORRECTION
from tests.support.engine import Variant, approved_release
from tests.support.web import app_for, csrf, seed_release, sign_in


def _token(rt: Runtime, role: Role, scope: TokenScope) -> dict[str, str]:
    email = f"{role.value}-{scope.value}@example.com"
    with transaction(rt.sessions) as session:
        add_user(session, email, role=role, password=None, now=FIXED_NOW)
        return {"Authorization": f"Bearer {issue_token(session, email, scope=scope)}"}


def test_staff_withdraw_form_creates_a_linked_draft(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A publicist withdraws a sent release from its page: a linked draft with the note, shown on both pages."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SENT)
    client = sign_in(app, Role.PUBLICIST)
    page = client.get(f"/releases/{seeded.release_id}")
    assert "withdraw" in page.context["actions"] and "correct" in page.context["actions"]  # type: ignore[attr-defined]
    confirm = client.get(f"/releases/{seeded.release_id}/confirm/withdraw")
    assert confirm.status_code == 200 and 'name="text"' in confirm.text
    done = client.post(
        f"/releases/{seeded.release_id}/actions/withdraw",
        data={"csrftoken": csrf(client), "text": "Released in error; please disregard."},
    )
    assert done.status_code == 303
    new_id = int(done.headers["location"].rsplit("/", 1)[1])
    shown = client.get(f"/releases/{new_id}")
    detail = shown.context["release"]  # type: ignore[attr-defined]
    assert (detail.kind, detail.parent_id, detail.status) == ("withdrawal", seeded.release_id, "draft")
    assert detail.subject.startswith("WITHDRAWN: ")
    original = client.get(f"/releases/{seeded.release_id}")
    assert [r.id for r in original.context["release"].linked] == [new_id]  # type: ignore[attr-defined]
    viewer = sign_in(app, Role.VIEWER)
    assert viewer.get(f"/releases/{seeded.release_id}/confirm/correct").status_code == 403


def test_api_correct_and_withdraw(rt: Runtime, tmp_path: Path) -> None:
    """POST /api/releases/{id}/correct (write token, publicist) makes a linked draft and cancels
    the original's queued rows; a read token is 403, a draft original 409, a bad file 422."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SENDING)
    with transaction(rt.sessions) as session:
        row = session.scalar(select(Delivery).where(Delivery.email == seeded.sent))
        assert row is not None
        row.status = "queued"
    client = TestClient(app_for(rt))
    write = _token(rt, Role.PUBLICIST, TokenScope.WRITE)
    read = _token(rt, Role.ADMIN, TokenScope.READ)
    url = f"/api/releases/{seeded.release_id}/correct"
    assert client.post(url, json={"text": CORRECTION}, headers=read).status_code == 403
    made = client.post(url, json={"text": CORRECTION}, headers=write)
    assert made.status_code == 200, made.text
    body = made.json()
    assert (body["kind"], body["parent"], body["status"]) == ("correction", seeded.release_id, "draft")
    with transaction(rt.sessions) as session:
        assert session.scalar(select(Delivery.status).where(Delivery.email == seeded.sent)) == "cancelled"
        release = session.get(Release, body["id"])
        assert release is not None and release.parent_id == seeded.release_id
    assert client.post(url, json={"text": "no front matter"}, headers=write).status_code == 422
    withdrawn = client.post(f"/api/releases/{seeded.release_id}/withdraw", json={"note": "Disregard."}, headers=write)
    assert withdrawn.status_code == 200 and withdrawn.json()["kind"] == "withdrawal"
    unsent = approved_release(rt, [Variant("press-all", "list:press")])
    refused = client.post(f"/api/releases/{unsent}/withdraw", json={"note": "x"}, headers=write)
    assert refused.status_code == 409


def test_approver_lifts_the_cap_from_the_release_page(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A sent release with a capped row offers an approver "lift-cap" (not a publicist); lifting
    queues the row again, sends the release back to sending and records who."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SENT)
    with transaction(rt.sessions) as session:
        row = session.scalar(select(Delivery).where(Delivery.email == seeded.sent))
        assert row is not None
        row.status, row.reason = "capped", "cadence cap: 1 per 24h"
    publicist = sign_in(app, Role.PUBLICIST)
    assert "lift-cap" not in publicist.get(f"/releases/{seeded.release_id}").context["actions"]  # type: ignore[attr-defined]
    client = sign_in(app, Role.APPROVER)
    assert "lift-cap" in client.get(f"/releases/{seeded.release_id}").context["actions"]  # type: ignore[attr-defined]
    done = client.post(f"/releases/{seeded.release_id}/actions/lift-cap", data={"csrftoken": csrf(client)})
    assert done.status_code == 303
    with transaction(rt.sessions) as session:
        assert session.scalar(select(Delivery.status).where(Delivery.email == seeded.sent)) == "queued"
        release = session.get(Release, seeded.release_id)
        assert release is not None and release.status == "sending" and release.cap_lifted_by


async def test_release_page_shows_the_waves(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A planned local-hour release's page lists its waves (UTC) and the local hour."""
    from datetime import UTC, datetime

    from mailer.engine.dispatch import Dispatcher
    from tests.support.conversations import WAVES, local_release
    from tests.support.engine import Clock, engine_runtime
    from tests.support.fake_transport import FakeTransport

    ert = engine_runtime(rt, 25, Clock(datetime(2026, 12, 1, 19, 0, tzinfo=UTC)), smtp__pool_size=1)
    rid = local_release(ert, tmp_path)
    await Dispatcher(ert, FakeTransport()).run_once()
    page = sign_in(app, Role.VIEWER).get(f"/releases/{rid}")
    assert [w.at for w in page.context["report"].waves] == list(WAVES)  # type: ignore[attr-defined]
    assert 'id="waves"' in page.text and "2026-12-02 09:00 in each contact" in page.text
