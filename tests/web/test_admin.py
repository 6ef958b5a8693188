"""Users and clients in the web app (issue 21): an admin adds a user, changes a role,
disables, makes a one-time reset link the user sets a password with; creates and edits
clients; everyone sets their own time zone and notifications; non-admins get 403."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Client, User
from tests.support.web import csrf, sign_in


def user(rt: Runtime, email: str) -> User:
    with transaction(rt.sessions) as session:
        found = session.scalar(select(User).where(User.email == email))
        assert found is not None
        return found


def test_admin_manages_users_and_reset_links(rt: Runtime, app: FastAPI) -> None:
    """Add a user without a password, make them an approver, give a reset link; it works once and they sign in."""
    admin = sign_in(app, Role.ADMIN)
    added = admin.post(
        "/admin/users/add", data={"csrftoken": csrf(admin), "email": "Nia@Example.com", "role": "publicist"}
    )
    assert added.status_code == 303
    nia = user(rt, "nia@example.com")
    assert (
        admin.post(f"/admin/users/{nia.id}/role", data={"csrftoken": csrf(admin), "role": "approver"}).status_code
        == 303
    )
    assert user(rt, "nia@example.com").role == "approver"
    page = admin.post(f"/admin/users/{nia.id}/reset", data={"csrftoken": csrf(admin)})
    link = re.search(r"/reset/([A-Za-z0-9_\-]+)", page.text)
    assert link is not None
    browser = TestClient(app, follow_redirects=False)
    browser.get(f"/reset/{link.group(1)}")
    done = browser.post(
        f"/reset/{link.group(1)}",
        data={"csrftoken": csrf(browser), "new": "a long new password", "confirm": "a long new password"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/login"
    again = browser.post(
        f"/reset/{link.group(1)}",
        data={"csrftoken": csrf(browser), "new": "another password!", "confirm": "another password!"},
    )
    assert again.status_code == 422 and "unknown, used or expired" in again.text
    login = browser.post(
        "/login",
        data={"email": "nia@example.com", "password": "a long new password", "next": "/", "csrftoken": csrf(browser)},
    )
    assert login.status_code == 303
    assert admin.post(f"/admin/users/{nia.id}/disable", data={"csrftoken": csrf(admin)}).status_code == 303
    assert not user(rt, "nia@example.com").active


def test_admin_cannot_demote_or_disable_themselves(rt: Runtime, app: FastAPI) -> None:
    """An admin taking their own admin role or disabling themselves is refused (409)."""
    admin = sign_in(app, Role.ADMIN)
    me = user(rt, "admin@staff.example.com")
    assert (
        admin.post(f"/admin/users/{me.id}/role", data={"csrftoken": csrf(admin), "role": "viewer"}).status_code == 409
    )
    assert admin.post(f"/admin/users/{me.id}/disable", data={"csrftoken": csrf(admin)}).status_code == 409


def test_clients_are_created_and_edited(rt: Runtime, app: FastAPI) -> None:
    """A client with a disclosure is created, a bad address names the field, an edit keeps the slug."""
    admin = sign_in(app, Role.ADMIN)
    form = {
        "csrftoken": csrf(admin), "slug": "valdoria", "name": "Valdoria Mission", "from_name": "Valdoria Press",
        "from_address": "press@valdoria.example.org", "postal_address": "1 Example Ave\nWashington",
        "disclosure": "Distributed by Example PR on behalf of Valdoria.",
    }  # fmt: skip
    assert admin.post("/admin/clients", data=form).status_code == 303
    bad = admin.post("/admin/clients", data=form | {"slug": "other", "from_address": "nope"})
    assert bad.status_code == 422 and bad.context["error"].startswith("from_address:")  # type: ignore[attr-defined]
    assert admin.post("/admin/clients", data=form | {"editing": "1", "name": "Mission of Valdoria"}).status_code == 303
    with transaction(rt.sessions) as session:
        assert [c.name for c in session.scalars(select(Client))] == ["Mission of Valdoria"]
    assert sign_in(app, Role.PUBLICIST).get("/admin/clients").status_code == 403


def test_own_time_zone_and_notifications(rt: Runtime, app: FastAPI) -> None:
    """A user picks America/New_York and turns notifications off; an unknown zone is refused naming it."""
    client = sign_in(app, Role.PUBLICIST)
    assert client.post("/account", data={"csrftoken": csrf(client), "time_zone": "Mars/Base"}).status_code == 422
    assert client.post("/account", data={"csrftoken": csrf(client), "time_zone": "America/New_York"}).status_code == 303
    me = user(rt, "publicist@staff.example.com")
    assert me.time_zone == "America/New_York" and me.notify is False
    assert "America/New_York" in client.get("/releases").text
