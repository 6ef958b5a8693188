"""The approval page and the schedule form (issue 21, problems 1 and 4): content, audience,
times in zones, no Approve button on one's own release, request changes with a note,
named zones and past times in the form, Send now naming the audience."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select

from mailer.domain.states import ReleaseStatus, Role
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Release, ReleaseComment
from tests.support.web import EMAILS, csrf, seed_release, sign_in


def test_the_approval_page_shows_what_the_decision_needs(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """Per-segment audience (suppressed left out) with sample names, a frame per segment, disclosure, Approve offered."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    page = sign_in(app, Role.APPROVER).get(f"/releases/{seeded.release_id}/approval")
    assert page.status_code == 200
    context = page.context  # type: ignore[attr-defined]
    [audience] = context["audiences"]
    assert audience.slug == "press-all" and audience.count == 2  # gone@example.org is suppressed
    assert "ann@example.com" in " ".join(audience.sample)
    assert context["may_approve"] and 'id="approve"' in page.text
    assert f'src="/releases/{seeded.release_id}/preview/frame?segment=press-all"' in page.text
    assert "Distributed by Example PR LLP" in page.text and "Never approved before." in page.text


def test_no_approve_button_on_ones_own_release(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """An approver who edited the release sees why, and no Approve button here or on the release page."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    with transaction(rt.sessions) as session:
        release_store.add_editor(session, seeded.release_id, EMAILS[Role.APPROVER], now=rt.clock())
    client = sign_in(app, Role.APPROVER)
    page = client.get(f"/releases/{seeded.release_id}/approval")
    assert 'id="approve"' not in page.text and 'id="own-release"' in page.text
    assert "approve" not in client.get(f"/releases/{seeded.release_id}").context["actions"]  # type: ignore[attr-defined]


def test_request_changes_and_comments(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A comment is kept; Request changes sends the release back to draft with the note as a comment."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    client = sign_in(app, Role.APPROVER)
    base = f"/releases/{seeded.release_id}/approval"
    assert client.post(f"{base}/comment", data={"csrftoken": csrf(client), "note": "Nice."}).status_code == 303
    assert (
        client.post(f"{base}/request-changes", data={"csrftoken": csrf(client), "note": "Fix the date."}).status_code
        == 303
    )
    with transaction(rt.sessions) as session:
        assert session.get(Release, seeded.release_id).status == "draft"  # type: ignore[union-attr]
        kinds = [(c.kind, c.body) for c in session.scalars(select(ReleaseComment))]
    assert kinds == [("comment", "Nice."), ("changes", "Fix the date.")]
    viewer = sign_in(app, Role.VIEWER)
    assert viewer.post(f"{base}/approve", data={"csrftoken": csrf(viewer)}).status_code == 403


def test_schedule_form_zones_past_and_send_now(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A named zone is read as such; a past time is 422 saying so; Send now names the audience size."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.DRAFT)
    client = sign_in(app, Role.ADMIN)
    url = f"/releases/{seeded.release_id}/actions/schedule"
    named = client.post(url, data={"csrftoken": csrf(client), "send_at": "2026-12-02 09:00 America/New_York"})
    assert named.status_code == 303
    with transaction(rt.sessions) as session:
        release = session.get(Release, seeded.release_id)
        assert release is not None and release.send_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    past = client.post(url, data={"csrftoken": csrf(client), "send_at": "2026-11-01 09:00"})
    assert past.status_code == 422 and "is in the past" in past.context["error"]  # type: ignore[attr-defined]
    confirm = client.get(f"/releases/{seeded.release_id}/confirm/schedule")
    assert 'id="send-now"' in confirm.text and "Yes, send to 2 contacts now" in confirm.text
    now = client.post(url, data={"csrftoken": csrf(client), "now": "1", "confirm_now": "1"})
    assert now.status_code == 303
    assert "sending now to 2 contacts" in client.get(f"/releases/{seeded.release_id}").text


def test_the_approval_page_diffs_against_the_last_approval(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """Approved, then edited and submitted again: the page shows the changed subject line, old and new; times in the user's zone."""
    from mailer.releases.approval import approve_release
    from mailer.releases.authoring import update_release
    from mailer.releases.plan import renderer_for
    from tests.support.releases import RELEASE, create, seed, submit

    renderer = renderer_for(rt.settings)
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    submit(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        approve_release(session, rid, approver="quinn", renderer=renderer, settings=rt.settings, now=rt.clock())
        edited = RELEASE.replace("Briefing for", "Invitation for")
        update_release(session, rid, edited, actor="pat", renderer=renderer, now=rt.clock())
    submit(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        from mailer.store.user_admin import set_preferences
        from mailer.store.users import find_user

        me = find_user(session, EMAILS[Role.APPROVER])
        assert me is not None
        set_preferences(session, me.id, time_zone="America/New_York", notify=True)
    page = sign_in(app, Role.APPROVER).get(f"/releases/{rid}/approval")
    diff = page.context["diff"]  # type: ignore[attr-defined]
    assert "-subject = \"Briefing for {{ first_name | default('you') }}\"" in diff
    assert "+subject = \"Invitation for {{ first_name | default('you') }}\"" in diff
    assert "2027-12-01 14:00 UTC" in page.text and "2027-12-01 09:00 EST (America/New_York) (your zone)" in page.text
