"""Two-person approval through the staff pages: an approver who edited the release, or an
admin who submitted it, is refused with the reason (409); nothing changes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from mailer.domain.states import ReleaseStatus, Role
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Release
from tests.support.web import EMAILS, csrf, seed_release, sign_in

REFUSAL = "a second person, who did not write, edit or submit it, must approve it"


def test_web_approval_by_an_editor_is_409_with_the_reason(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """An approver recorded as an editor of the release gets 409 and the rule on the release page; nothing changes."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    with transaction(rt.sessions) as session:
        release_store.add_editor(session, seeded.release_id, EMAILS[Role.APPROVER], now=rt.clock())
    client = sign_in(app, Role.APPROVER)
    response = client.post(f"/releases/{seeded.release_id}/actions/approve", data={"csrftoken": csrf(client)})
    assert response.status_code == 409
    assert response.context["error"] == (  # type: ignore[attr-defined]
        f"{EMAILS[Role.APPROVER]} edited release {seeded.release_id}: {REFUSAL}"
    )
    with transaction(rt.sessions) as session:
        assert session.get(Release, seeded.release_id).status == "submitted"  # type: ignore[union-attr]


def test_web_submitter_cannot_approve(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """An admin who submitted a release through the pages cannot approve it too (409); another approver can."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.DRAFT)
    admin = sign_in(app, Role.ADMIN)
    url = f"/releases/{seeded.release_id}/actions"
    assert admin.post(f"{url}/submit", data={"csrftoken": csrf(admin)}).status_code == 303
    refused = admin.post(f"{url}/approve", data={"csrftoken": csrf(admin)})
    assert refused.status_code == 409
    assert "submitted release" in refused.context["error"]  # type: ignore[attr-defined]
    approver = sign_in(app, Role.APPROVER)
    assert approver.post(f"{url}/approve", data={"csrftoken": csrf(approver)}).status_code == 303
    with transaction(rt.sessions) as session:
        assert session.get(Release, seeded.release_id).status == "approved"  # type: ignore[union-attr]
