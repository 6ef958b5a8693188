"""The role matrix: each role × each release action → allowed (the action runs) or 403
(nothing changes), through the same confirmation and POST routes the pages use.

Each case puts a fresh release in the state where the action is legal, so "allowed"
means the action really ran (303 back to the release), not merely "not 403".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.domain.states import ReleaseStatus, Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Release, ReleaseEvent
from tests.support.web import EMAILS, app_for, csrf, make_users, seed_release, sign_in

# action → (state it needs, form data)
SETUP: dict[str, tuple[ReleaseStatus, dict[str, str | list[str]]]] = {
    "submit": (ReleaseStatus.DRAFT, {}),
    "approve": (ReleaseStatus.SUBMITTED, {}),
    "schedule": (ReleaseStatus.APPROVED, {"send_at": "2026-12-01T09:00:00+00:00"}),
    "pause": (ReleaseStatus.SENDING, {}),
    "resume": (ReleaseStatus.PAUSED, {}),
    "retry": (ReleaseStatus.SENT, {"statuses": ["failed"]}),
    "cancel": (ReleaseStatus.APPROVED, {}),
}

ALLOWED: dict[Role, set[str]] = {
    Role.ADMIN: set(SETUP),
    Role.PUBLICIST: {"submit", "schedule"},  # cancel: only their own drafts (below)
    Role.APPROVER: {"approve"},
    Role.VIEWER: set(),
}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("action", list(SETUP))
def test_role_matrix(rt: Runtime, tmp_path: Path, role: Role, action: str) -> None:
    """Each role may take exactly the actions of its row; the rest are 403 and leave no trace."""
    make_users(rt, [role])
    status, data = SETUP[action]
    seeded = seed_release(rt, tmp_path, status=status)
    client = sign_in(app_for(rt), role)
    confirm = client.get(f"/releases/{seeded.release_id}/confirm/{action}")
    response = client.post(f"/releases/{seeded.release_id}/actions/{action}", data={**data, "csrftoken": csrf(client)})
    with transaction(rt.sessions) as session:
        events = session.query(ReleaseEvent).filter_by(release_id=seeded.release_id).count()
    if action in ALLOWED[role]:
        assert confirm.status_code == 200, confirm.text
        assert response.status_code == 303, response.text
        assert events >= 1  # the action was recorded
    else:
        assert confirm.status_code == 403
        assert response.status_code == 403
        assert response.template.name == "staff/forbidden.html"  # type: ignore[attr-defined]
        assert events == 0  # nothing was done
        with transaction(rt.sessions) as session:
            assert session.get(Release, seeded.release_id).status == status.value  # type: ignore[union-attr]


def test_events_count_baseline(rt: Runtime, tmp_path: Path) -> None:
    """A seeded release has no workflow events of its own (the matrix counts from here)."""
    seeded = seed_release(rt, tmp_path)
    with transaction(rt.sessions) as session:
        assert session.query(ReleaseEvent).filter_by(release_id=seeded.release_id).count() == 0


@pytest.mark.parametrize(
    ("author_is_me", "status", "allowed"), [(True, "draft", True), (False, "draft", False), (True, "submitted", False)]
)
def test_publicist_cancels_only_own_drafts(
    rt: Runtime, tmp_path: Path, author_is_me: bool, status: str, allowed: bool
) -> None:
    """A publicist may cancel a draft they wrote, not someone else's, and not once submitted."""
    make_users(rt, [Role.PUBLICIST])
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus(status))
    if author_is_me:
        with transaction(rt.sessions) as session:
            release = session.get(Release, seeded.release_id)
            assert release is not None
            release.author = EMAILS[Role.PUBLICIST]
    client = sign_in(app_for(rt), Role.PUBLICIST)
    detail = client.get(f"/releases/{seeded.release_id}")
    assert ("cancel" in detail.context["actions"]) is allowed  # type: ignore[attr-defined]
    response = client.post(f"/releases/{seeded.release_id}/actions/cancel", data={"csrftoken": csrf(client)})
    assert response.status_code == (303 if allowed else 403)
