"""The staff inbox of replies (all, per release, per contact), undo, the research queue
and the reply counts on the release page, through the test client on both databases."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import select

from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Contact, Delivery
from tests.support.bounces import send_to, suppressions
from tests.support.replies import address_of, corpus_reply, holds, inbound, reply_runtime
from tests.support.replies import research as research_items
from tests.support.web import csrf, sign_in


def _seed(rt: Runtime) -> dict[str, int]:
    """Three replies (human, out of office, remove me) and one leaver, each to a delivery of its own release."""
    rrt = reply_runtime(rt)
    ids: dict[str, int] = {}
    for address, name in (
        ("ann.lee@daily.example.com", "human-en-gmail.eml"),
        ("ben.okafor@wire.example.com", "ooo-en-exchange.eml"),
        ("nina.park@tabloid.example.com", "remove-en.eml"),
        ("mark.ellis@gazette.example.com", "left-en-newaddress.eml"),
    ):
        sent = send_to(rrt, address)
        to = address_of(rrt, sent.delivery_id)
        inbound(rrt).process(corpus_reply(name, to), envelope_recipients=[to])
        ids[address] = sent.delivery_id
    return ids


def _release_of(rt: Runtime, delivery_id: int) -> int:
    with transaction(rt.sessions) as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row.release_id


def test_inbox_shows_each_reply_with_its_kind_evidence_and_action(rt: Runtime, app: FastAPI) -> None:
    """A viewer reads the inbox (all, per release, per contact): kinds, evidence, actions; no undo offered."""
    ids = _seed(rt)
    client = sign_in(app, Role.VIEWER)
    page = client.get("/replies")
    assert page.status_code == 200 and page.template.name == "staff/replies.html"  # type: ignore[attr-defined]
    rows = page.context["rows"]  # type: ignore[attr-defined]
    assert [r.kind for r in rows] == ["left_outlet", "unsubscribe", "out_of_office", "human"]
    assert page.context["can_act"] is False  # type: ignore[attr-defined]
    assert "back on 3 December" in page.text and "held until 2026-12-03" in page.text
    release_id = _release_of(rt, ids["ben.okafor@wire.example.com"])
    per_release = client.get(f"/releases/{release_id}/replies").context["rows"]  # type: ignore[attr-defined]
    assert [r.kind for r in per_release] == ["out_of_office"]
    per_contact = client.get("/contacts/ann.lee@daily.example.com/replies").context["rows"]  # type: ignore[attr-defined]
    assert [r.kind for r in per_contact] == ["human"] and "15 minutes" in (per_contact[0].text or "")
    assert client.get("/replies?kind=unsubscribe").context["rows"][0].kind == "unsubscribe"  # type: ignore[attr-defined]
    assert client.get("/contacts/nobody@example.com/replies").status_code == 404
    release = client.get(f"/releases/{release_id}")
    assert release.context["replies"] == {"out_of_office": 1}  # type: ignore[attr-defined]


def test_undo_from_the_inbox(rt: Runtime, app: FastAPI) -> None:
    """A publicist undoes a hold; undoing a reply's unsubscribe needs an admin (403 for the publicist)."""
    _seed(rt)
    publicist = sign_in(app, Role.PUBLICIST)
    page = publicist.get("/replies")
    rows = {r.kind: r for r in page.context["rows"]}  # type: ignore[attr-defined]
    held = publicist.post(
        f"/replies/{rows['out_of_office'].id}/undo", data={"csrftoken": csrf(publicist), "back": "/replies"}
    )
    assert held.status_code == 303 and held.headers["location"] == "/replies"
    assert all(h.lifted_at is not None for h in holds(rt))
    refused = publicist.post(f"/replies/{rows['unsubscribe'].id}/undo", data={"csrftoken": csrf(publicist)})
    assert refused.status_code == 403
    assert ("nina.park@tabloid.example.com", "harbor") in suppressions(rt)
    admin = sign_in(app, Role.ADMIN)
    admin.get("/replies")
    done = admin.post(
        f"/replies/{rows['unsubscribe'].id}/undo", data={"csrftoken": csrf(admin), "back": "https://evil.example/"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/replies"
    assert ("nina.park@tabloid.example.com", "harbor") not in suppressions(rt)
    viewer = sign_in(app, Role.VIEWER)
    viewer.get("/replies")
    assert viewer.post(f"/replies/{rows['human'].id}/undo", data={"csrftoken": csrf(viewer)}).status_code == 403


def test_research_queue_confirm_and_dismiss(rt: Runtime, app: FastAPI) -> None:
    """The research page lists the leaver's new address; confirming adds the contact, a second item is dismissed."""
    _seed(rt)
    admin = sign_in(app, Role.ADMIN)
    page = admin.get("/research")
    [item] = page.context["items"]  # type: ignore[attr-defined]
    assert (item.new_email, item.new_outlet) == ("mark.ellis@nordictimes.example.net", "Nordic Times")
    done = admin.post(
        f"/research/{item.id}/confirm",
        data={"csrftoken": csrf(admin), "email": "mark.ellis@nordictimes.example.net", "outlet": "Nordic Times"},
    )
    assert done.status_code == 303
    with transaction(rt.sessions) as session:
        assert session.scalar(select(Contact.outlet).where(Contact.email == "mark.ellis@nordictimes.example.net")) == (
            "Nordic Times"
        )
    assert research_items(rt)[0].status == "confirmed"
    assert admin.get("/research").context["items"] == []  # type: ignore[attr-defined]
    assert admin.post(f"/research/{item.id}/dismiss", data={"csrftoken": csrf(admin)}).status_code == 303
    assert research_items(rt)[0].status == "confirmed"  # a decided item stays decided
    assert admin.post(f"/research/{item.id}/maybe", data={"csrftoken": csrf(admin)}).status_code == 404
