"""Staff and public web helpers shared by the web, API, browser and workflow tests:
one user per role, a signed-in test client, CSRF, a seeded release with deliveries and a
bounce, one seeded delivery for unsubscribe tests, and API tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import func, select, update

import mailer.accounts.passwords
from mailer.accounts.api_tokens import issue_token
from mailer.accounts.users import add_user
from mailer.domain.states import DeliveryStatus, ReleaseStatus, Role, SuppressionReason, email_hash
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.suppressions import add_suppression
from mailer.store.tables import Client, Contact, Delivery, DeliveryEvent, Release, Segment, Suppression
from mailer.web import create_app
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, add_contacts, approved_release

PASSWORD = "correct horse battery staple"


EMAILS = {role: f"{role.value}@staff.example.com" for role in Role}


RAW_BOUNCE = "From: MAILER-DAEMON\nSubject: Undelivered\n\n<script>alert('raw')</script> 550 5.1.1 user unknown"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its cheapest parameters in the test process (about 2 ms a hash instead
    of 0.3 s): the same algorithm and code paths, fast enough for the many users and
    sign-ins of the web tests. CLI and server subprocesses keep the real parameters."""
    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    monkeypatch.setattr(mailer.accounts.passwords, "_HASHER", cheap)


def make_users(rt: Runtime, roles: Sequence[Role] = tuple(Role)) -> None:
    """One user per role in ``roles`` (``admin@staff.example.com``...), password :data:`PASSWORD`."""
    with transaction(rt.sessions) as session:
        for role in roles:
            add_user(
                session, EMAILS[role], role=role, name=f"{role.value.title()} User", password=PASSWORD, now=FIXED_NOW
            )


def app_for(rt: Runtime) -> FastAPI:
    return create_app(rt.settings, clock=rt.clock)


@pytest.fixture
def app(rt: Runtime) -> Iterator[FastAPI]:
    """The app on the test database, with one user per role."""
    make_users(rt)
    yield app_for(rt)


def csrf(client: TestClient) -> str:
    """The client's CSRF cookie (what a form carries as ``csrftoken``)."""
    token = client.cookies.get("csrftoken")
    assert token, "no csrftoken cookie yet: GET a page first"
    return token


def sign_in(app: FastAPI, role: Role) -> TestClient:
    """A test client signed in as the user of ``role``."""
    client = TestClient(app, follow_redirects=False)
    client.get("/login")
    response = client.post(
        "/login", data={"email": EMAILS[role], "password": PASSWORD, "next": "/", "csrftoken": csrf(client)}
    )
    assert response.status_code == 303, response.text
    return client


@dataclass(frozen=True)
class SeededRelease:
    """The release :func:`seed_release` made and two of its recipients."""

    release_id: int
    bounced: str
    sent: str


def seed_release(rt: Runtime, tmp_path: Path, *, status: ReleaseStatus = ReleaseStatus.SENT) -> SeededRelease:
    """An approved release (author ``author@example.com``) to three contacts, with
    delivery rows (two sent a minute apart, one failed 550 5.1.1 with a bounce event
    and raw message, and a hard-bounce suppression), moved to ``status``."""
    emails = ["ann@example.com", "bob@example.net", "gone@example.org"]
    add_contacts(rt, tmp_path, emails)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as session:
        segment_id = session.scalar(select(Segment.id).where(Segment.slug == "press-all"))
        contacts = {c.email: c for c in session.scalars(select(Contact))}
        for i, email in enumerate(emails):
            gone = email.startswith("gone")
            row = Delivery(
                release_id=rid,
                contact_id=contacts[email].id,
                segment_id=segment_id,
                email=email,
                email_hash=email_hash(email),
                domain=email.split("@")[1],
                status=DeliveryStatus.FAILED.value if gone else DeliveryStatus.SENT.value,
                message_id=f"<{rid}.{i}@mail.example.com>",
                attempts=1,
                last_code=550 if gone else 250,
                last_reply="5.1.1 No such user" if gone else "2.0.0 OK",
                reason="hard_bounce" if gone else None,
                sent_at=None if gone else FIXED_NOW + timedelta(minutes=i),
                updated_at=FIXED_NOW + timedelta(minutes=i),
            )
            session.add(row)
            session.flush()
            if gone:
                session.add(
                    DeliveryEvent(
                        delivery_id=row.id,
                        contact_id=row.contact_id,
                        kind="bounced",
                        code=550,
                        detail="5.1.1 <b>user unknown</b>",
                        raw=RAW_BOUNCE,
                        at=FIXED_NOW,
                    )
                )
                add_suppression(session, email, reason=SuppressionReason.HARD_BOUNCE, source="bounce", now=FIXED_NOW)
        session.execute(update(Release).where(Release.id == rid).values(status=status.value))
    return SeededRelease(rid, "gone@example.org", "ann@example.com")


def api_token(rt: Runtime, email: str = "robot@example.com", role: Role = Role.VIEWER) -> str:
    """A viewer account without a password, and its new API token."""
    with transaction(rt.sessions) as session:
        add_user(session, email, role=role, password=None, now=FIXED_NOW)
        return issue_token(session, email)


DANA = "dana@harborledger.example.com"


@dataclass(frozen=True)
class SeededDelivery:
    """The rows :func:`seed_delivery` made."""

    delivery_id: int
    contact_id: int
    release_id: int
    client_slug: str


def seed_delivery(
    rt: Runtime,
    *,
    email: str = DANA,
    client_slug: str = "acme",
    client_name: str = "Acme Examplia Trade Office",
    status: DeliveryStatus = DeliveryStatus.SENT,
) -> SeededDelivery:
    """One client (created when missing), a new release for it, the contact (created when
    missing) and one delivery of that release to the contact."""
    with transaction(rt.sessions) as s:
        client = s.scalar(select(Client).where(Client.slug == client_slug))
        if client is None:
            client = Client(
                slug=client_slug,
                name=client_name,
                from_name=client_name,
                from_address=f"press@{client_slug}.example.com",
                reply_to=None,
                postal_address="1 Harbour Road, Springfield",
                disclosure=None,
                created_at=FIXED_NOW,
            )
            s.add(client)
        contact = s.scalar(select(Contact).where(Contact.email == email))
        if contact is None:
            contact = Contact(
                email=email,
                email_hash=email_hash(email),
                first_name="Dana",
                last_name="Reyes",
                outlet="Harbor Ledger",
                attributes={"desk": "metro"},
                created_at=FIXED_NOW,
                updated_at=FIXED_NOW,
            )
            s.add(contact)
        s.flush()
        release = Release(
            client_id=client.id,
            title="Results",
            subject="Results",
            template="press_release",
            body="Body",
            extra={},
            status=ReleaseStatus.SENDING.value,
            author="pat@firm.example.com",
            created_at=FIXED_NOW,
            updated_at=FIXED_NOW,
        )
        s.add(release)
        s.flush()
        delivery = Delivery(
            release_id=release.id,
            contact_id=contact.id,
            email=email,
            email_hash=email_hash(email),
            domain=email.rpartition("@")[2],
            status=status.value,
            message_id=f"<d{release.id}.{contact.id}@mail.example.com>",
            updated_at=FIXED_NOW,
        )
        s.add(delivery)
        s.flush()
        return SeededDelivery(delivery.id, contact.id, release.id, client_slug)


def snapshot(rt: Runtime) -> dict[str, Any]:
    """Everything an unsubscribe could change: suppressions, events, delivery states."""
    with transaction(rt.sessions) as s:
        return {
            "suppressions": s.execute(select(Suppression.email_hash, Suppression.scope, Suppression.reason)).all(),
            "events": s.scalar(select(func.count()).select_from(DeliveryEvent)),
            "deliveries": s.execute(select(Delivery.id, Delivery.status).order_by(Delivery.id)).all(),
        }


def scopes(rt: Runtime, email: str = DANA) -> set[str]:
    with transaction(rt.sessions) as s:
        return set(s.scalars(select(Suppression.scope).where(Suppression.email_hash == email_hash(email))))
