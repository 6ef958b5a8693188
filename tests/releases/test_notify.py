"""Notification mail (issue 21): approvers told on submit, the author on approval and on
changes requested; users who opted out and names that are no user are not; queued mail
goes through a transport of its own, a refusal is kept for the next try."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.accounts.users import add_user
from mailer.config import Settings, WebSettings
from mailer.domain.states import Role
from mailer.message import Renderer
from mailer.releases import notify
from mailer.releases.approval import approve_release, request_changes
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import user_admin
from mailer.store.db import transaction
from mailer.store.tables import Notification, User
from tests.support.constants import FIXED_NOW
from tests.support.fake_transport import FakeTransport
from tests.support.releases import BASE_URL, create, seed, submit


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def queued(rt: Runtime) -> list[tuple[str, str]]:
    with transaction(rt.sessions) as session:
        return [(n.to_address, n.kind) for n in session.scalars(select(Notification).order_by(Notification.id))]


async def test_who_is_told_and_delivery(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """Submit tells the approvers (not one who opted out); changes and approval tell the author; delivery marks them sent."""
    seed(rt, tmp_path)
    with transaction(rt.sessions) as session:
        for email, role in (("pat@example.com", Role.PUBLICIST), ("quinn@example.com", Role.APPROVER),
                            ("olga@example.com", Role.APPROVER), ("ada@example.com", Role.ADMIN)):  # fmt: skip
            add_user(session, email, role=role, password=None, now=FIXED_NOW)
        olga = session.scalar(select(User).where(User.email == "olga@example.com"))
        assert olga is not None
        user_admin.set_preferences(session, olga.id, time_zone=None, notify=False)
    rid = create(rt, renderer, author="pat@example.com")
    submit(rt, renderer, rid, actor="pat@example.com")
    assert sorted(queued(rt)) == [("ada@example.com", "submitted"), ("quinn@example.com", "submitted")]
    with transaction(rt.sessions) as session:
        request_changes(session, rid, actor="quinn@example.com", note="Shorter.", settings=rt.settings, now=FIXED_NOW)
    submit(rt, renderer, rid, actor="pat@example.com")
    with transaction(rt.sessions) as session:
        approve_release(
            session, rid, approver="quinn@example.com", renderer=renderer, settings=rt.settings, now=FIXED_NOW
        )
    kinds = [k for to, k in queued(rt) if to == "pat@example.com"]
    assert kinds == ["changes", "approved"]
    transport = FakeTransport()
    transport.reply("ada@example.com", 450, "4.2.0 try later")
    sent = await notify.deliver_pending(rt.sessions, transport, rt.settings, FIXED_NOW + timedelta(minutes=1))
    assert sent == len(queued(rt)) - 2  # ada's two notices refused this time
    with transaction(rt.sessions) as session:
        waiting = [n.to_address for n in session.scalars(select(Notification).where(Notification.sent_at.is_(None)))]
    assert waiting == ["ada@example.com", "ada@example.com"]
    assert b"Auto-Submitted: auto-generated" in transport.sent[0].data


def test_an_edit_by_someone_else_tells_the_author(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """A submitted release edited by another user goes back to draft and its author is told; the author's own edit is not news."""
    from mailer.releases.authoring import update_release
    from tests.support.releases import RELEASE

    seed(rt, tmp_path)
    with transaction(rt.sessions) as session:
        add_user(session, "pat@example.com", role=Role.PUBLICIST, password=None, now=FIXED_NOW)
    rid = create(rt, renderer, author="pat@example.com")
    submit(rt, renderer, rid, actor="pat@example.com")
    with transaction(rt.sessions) as session:
        update_release(
            session, rid, RELEASE, actor="pat@example.com", renderer=renderer, now=FIXED_NOW, settings=rt.settings
        )
    submit(rt, renderer, rid, actor="pat@example.com")
    with transaction(rt.sessions) as session:
        update_release(
            session, rid, RELEASE, actor="ed@example.com", renderer=renderer, now=FIXED_NOW, settings=rt.settings
        )
    assert queued(rt) == [("pat@example.com", "returned-draft")]
