"""Unsubscribe routes through the test client, on SQLite and PostgreSQL.

GET/HEAD only read; POST (one-click or the page's form) suppresses before answering
200; every bad token gets the same 404.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from mailer.config import Settings
from mailer.domain.states import GLOBAL_SCOPE, DeliveryStatus
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import DeliveryEvent, Suppression
from mailer.web import create_app
from tests.support.constants import FIXED_NOW
from tests.support.web import DANA, scopes, seed_delivery, snapshot


def client_for(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock=lambda: FIXED_NOW), follow_redirects=False) as client:
        yield client


@pytest.fixture
def web(rt: Runtime) -> Iterator[TestClient]:
    """A test client on the app built from the runtime's settings."""
    yield from client_for(rt.settings)


def url(rt: Runtime, delivery_id: int) -> str:
    return f"/u/{Tokens.from_settings(rt.settings).unsubscribe(delivery_id)}"


ONE_CLICK_MULTIPART = (
    b'--b0undary\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b0undary--\r\n'
)


def test_get_page_confirms_who_and_changes_nothing(rt: Runtime, web: TestClient) -> None:
    """GET shows the masked address and the client, is noindex, and writes nothing."""
    seeded = seed_delivery(rt)
    before = snapshot(rt)
    response = web.get(url(rt, seeded.delivery_id))
    assert response.status_code == 200
    assert response.template.name == "unsubscribe.html"  # type: ignore[attr-defined]
    page = response.context["page"]  # type: ignore[attr-defined]
    assert (page.masked_email, page.client_name) == ("d***@harborledger.example.com", "Acme Examplia Trade Office")
    assert (page.everywhere, page.for_client) == (False, False)
    assert "noindex" in response.headers["x-robots-tag"]
    assert '<meta name="robots" content="noindex' in response.text
    assert 'value="client"' in response.text and 'value="all"' in response.text
    assert DANA not in response.text
    assert "set-cookie" not in response.headers
    assert snapshot(rt) == before


def test_head_and_scanner_fetches_change_nothing(rt: Runtime, web: TestClient) -> None:
    """HEAD and a burst of link-scanner GETs leave suppressions, events and deliveries alone."""
    seeded = seed_delivery(rt, status=DeliveryStatus.QUEUED)
    before = snapshot(rt)
    target = url(rt, seeded.delivery_id)
    assert web.head(target).status_code == 200
    for agent in ("Mozilla/5.0 (compatible; SafeLinks)", "Barracuda", "curl/8.0", "Googlebot"):
        assert web.get(target, headers={"User-Agent": agent}).status_code == 200
    assert snapshot(rt) == before


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_suppresses_for_the_client(rt: Runtime, web: TestClient, encoding: str) -> None:
    """RFC 8058 one-click in either encoding, no cookies: 200, no redirect, suppressed for the client."""
    seeded = seed_delivery(rt)
    web.cookies.clear()
    if encoding == "urlencoded":
        response = web.post(url(rt, seeded.delivery_id), data={"List-Unsubscribe": "One-Click"})
    else:
        response = web.post(
            url(rt, seeded.delivery_id),
            content=ONE_CLICK_MULTIPART,
            headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert response.template.name == "unsubscribed.html"  # type: ignore[attr-defined]
    assert scopes(rt) == {"acme"}
    with transaction(rt.sessions) as s:
        sup = s.scalars(select(Suppression)).one()
        event = s.scalars(select(DeliveryEvent)).one()
    assert (sup.reason, sup.email, sup.created_at) == ("unsubscribed", DANA, FIXED_NOW)
    assert sup.source.startswith("one-click")
    assert (event.kind, event.delivery_id, event.contact_id) == ("unsubscribed", seeded.delivery_id, seeded.contact_id)


def test_repeated_post_is_harmless(rt: Runtime, web: TestClient) -> None:
    """A mail client that posts three times gets 200 each time; one suppression, one event."""
    seeded = seed_delivery(rt)
    for _ in range(3):
        response = web.post(url(rt, seeded.delivery_id), data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    after = snapshot(rt)
    assert len(after["suppressions"]) == 1
    assert after["events"] == 1


def test_page_choices_set_the_scope(rt: Runtime, web: TestClient) -> None:
    """choice=client suppresses for this client; then choice=all for everyone, and the page says so."""
    seeded = seed_delivery(rt)
    target = url(rt, seeded.delivery_id)
    assert web.post(target, data={"choice": "client"}).status_code == 200
    assert scopes(rt) == {"acme"}
    page = web.get(target).context["page"]  # type: ignore[attr-defined]
    assert (page.for_client, page.everywhere) == (True, False)
    response = web.post(target, data={"choice": "all"})
    assert response.status_code == 200
    assert response.context["result"].scope == GLOBAL_SCOPE  # type: ignore[attr-defined]
    assert scopes(rt) == {"acme", GLOBAL_SCOPE}
    with transaction(rt.sessions) as s:
        source = s.scalar(select(Suppression.source).where(Suppression.scope == GLOBAL_SCOPE))
    assert source is not None and source.startswith("preference page")
    assert web.get(target).context["page"].everywhere  # type: ignore[attr-defined]


def test_unsubscribe_stops_queued_deliveries_in_scope(rt: Runtime, web: TestClient) -> None:
    """One-click stops the contact's queued rows of the same client only; 'all' stops the rest."""
    sent = seed_delivery(rt)
    same_client = seed_delivery(rt, status=DeliveryStatus.QUEUED)
    other_client = seed_delivery(rt, client_slug="globex", client_name="Globex", status=DeliveryStatus.DEFERRED)
    web.post(url(rt, sent.delivery_id), data={"List-Unsubscribe": "One-Click"})
    states = dict(snapshot(rt)["deliveries"])
    assert states[same_client.delivery_id] == "suppressed"
    assert states[other_client.delivery_id] == "deferred"
    assert states[sent.delivery_id] == "sent"
    web.post(url(rt, sent.delivery_id), data={"choice": "all"})
    assert dict(snapshot(rt)["deliveries"])[other_client.delivery_id] == "suppressed"


def _bad_tokens(rt: Runtime, good: str, missing_id: int) -> dict[str, str]:
    head, _, sig = good.rpartition(".")
    # Change the first character: the last one of a base64 signature carries padding
    # bits, so changing it may leave the decoded signature as it was.
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    return {
        "garbage": "not-a-token",
        "tampered": f"{head}.{flipped}",
        "foreign": Tokens("someone-elses-key").unsubscribe(1),
        "rotated-out": Tokens("the-key-before-last").unsubscribe(1),
        "deleted delivery": Tokens.from_settings(rt.settings).unsubscribe(missing_id),
    }


def test_bad_tokens_all_get_the_same_404(rt: Runtime, web: TestClient) -> None:
    """Tampered, foreign, rotated-out, garbage and deleted-delivery tokens: one identical 404, nothing written."""
    seeded = seed_delivery(rt)
    good = Tokens.from_settings(rt.settings).unsubscribe(seeded.delivery_id)
    before = snapshot(rt)
    answers = set()
    for name, token in _bad_tokens(rt, good, seeded.delivery_id + 1000).items():
        for response in (
            web.get(f"/u/{token}"),
            web.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}),
            web.post(f"/u/{token}", data={"choice": "all"}),
        ):
            assert response.status_code == 404, name
            assert "noindex" in response.headers["x-robots-tag"]
            answers.add((response.text, response.headers["content-type"]))
    assert len(answers) == 1
    assert snapshot(rt) == before


def test_rotated_key_verifies_while_listed(rt: Runtime) -> None:
    """A link signed with the previous key works while that key is in old_secret_keys, and 404s after."""
    seeded = seed_delivery(rt)
    old_token = Tokens("the-previous-key").unsubscribe(seeded.delivery_id)
    rotated = rt.settings.model_copy(
        update={"secret_key": SecretStr("the-new-key"), "old_secret_keys": [SecretStr("the-previous-key")]}
    )
    for client in client_for(rotated):
        assert client.get(f"/u/{old_token}").status_code == 200
    retired = rt.settings.model_copy(update={"secret_key": SecretStr("the-new-key"), "old_secret_keys": []})
    for client in client_for(retired):
        assert client.get(f"/u/{old_token}").status_code == 404


def test_page_is_autoescaped(rt: Runtime, web: TestClient) -> None:
    """A client name with markup is shown as text, never run."""
    seeded = seed_delivery(rt, client_slug="evil", client_name="<script>alert(1)</script> PR")
    response = web.get(url(rt, seeded.delivery_id))
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text
