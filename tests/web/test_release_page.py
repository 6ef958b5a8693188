"""The staff release page shows a release's late-send limit and, when it waits for a person,
why and what lets it go."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import update

from mailer.domain.states import ReleaseStatus, Role
from mailer.releases import holds
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Release
from tests.support.constants import FIXED_NOW
from tests.support.web import seed_release, sign_in


def test_release_page_shows_why_a_release_waits(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """An approved release held as late shows its not_after and the reason with the confirm command."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.APPROVED)
    with transaction(rt.sessions) as session:
        session.execute(
            update(Release)
            .where(Release.id == seeded.release_id)
            .values(send_at=FIXED_NOW - timedelta(days=3), not_after=None)
        )
        release = session.get(Release, seeded.release_id)
        assert release is not None
        holds.hold(session, release, f"{holds.LATE_HOLD}not started by ...", now=FIXED_NOW)
    page = sign_in(app, Role.ADMIN).get(f"/releases/{seeded.release_id}")
    assert page.status_code == 200
    assert page.context["waiting"] == "late: not started by ..."  # type: ignore[attr-defined]
    # approved (FIXED_NOW) after its send time: the window counts from the approval
    assert page.context["not_after"] == FIXED_NOW + timedelta(days=1)  # type: ignore[attr-defined]
    assert "2026-11-26 09:00 UTC" in page.text
    assert "Not sent: it waits for a person. late: not started by ..." in page.text
    assert "resume" not in page.context["actions"]  # type: ignore[attr-defined]
