"""The newsroom: a public page per client, a page per release (no personalization, its
kit, the disclosure), an Atom feed, noindex per client; each message's "View online"
link; an embargoed release's page and kit answer only to its recipients' tokens until
the lift, and are public after it (automatically)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from mailer.config import AssetSettings, Settings
from mailer.domain.errors import InputError
from mailer.message import Renderer
from mailer.releases.clients import client_fields
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Client
from mailer.web import create_app
from tests.support.engine import Clock, Variant, add_contacts, approved_release
from tests.support.kit import Sent, html_of, png, send_kit_release, text_of
from tests.support.releases import CLIENT

BEFORE_LIFT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AFTER_LIFT = datetime(2027, 12, 1, 15, 0, tzinfo=UTC)  # the acme release lifts at 10:00 New York
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"assets": AssetSettings(dir=tmp_path / "assets")})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def client_at(rt: Runtime, now: datetime) -> TestClient:
    return TestClient(create_app(rt.settings, clock=Clock(now)))


def view_online(sent: Sent, address: str) -> str:
    found = re.search(r"View online:\s+(\S+)", text_of(sent.messages[address]))
    assert found is not None
    return found.group(1)


async def test_every_message_links_its_own_view_online_page(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """Both parts carry "View online": the release's newsroom page with that delivery's token."""
    sent = await send_kit_release(rt, renderer, tmp_path)
    ann, bob = view_online(sent, "ann@daily.example.com"), view_online(sent, "bob@tv.example.com")
    page = f"{rt.settings.web.base_url}/newsroom/acme/{sent.release_id}?t="
    assert ann.startswith(page) and bob.startswith(page) and ann != bob
    assert f'<a href="{ann}"' in html_of(sent.messages["ann@daily.example.com"])


async def test_an_embargoed_release_answers_only_to_its_recipients_until_the_lift(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """Before the lift: no listing, the page and kit 404 without a token (like a bad
    unsubscribe link), open with a recipient's token (embargo shown, noindex). After the
    lift: listed, public, in the feed, with no token."""
    sent = await send_kit_release(rt, renderer, tmp_path)
    early = client_at(rt, BEFORE_LIFT)
    path = f"/newsroom/acme/{sent.release_id}"
    not_found = early.get("/u/not-a-token").content
    assert early.get(path).content == not_found and early.get(path).status_code == 404
    assert f"/newsroom/acme/{sent.release_id}" not in early.get("/newsroom/acme").text
    token_page = early.get(view_online(sent, "ann@daily.example.com").removeprefix(rt.settings.web.base_url))
    assert token_page.status_code == 200
    assert "EMBARGOED until 1 December 2027, 10:00 UTC-05:00 / 1 December 2027, 15:00 UTC" in token_page.text
    assert token_page.headers["x-robots-tag"] == "noindex, nofollow"
    assert token_page.headers["cache-control"] == "private, no-store"
    # the page's own kit links carry the reader's token; the plain file URL does not open
    pdf_link = re.search(r'href="(/kit/[^"]+/facts\.pdf)"', token_page.text.replace(rt.settings.web.base_url, ""))
    assert pdf_link is not None and early.get(pdf_link.group(1)).status_code == 200
    img = re.search(r'<img src="([^"]+)"', token_page.text)
    assert img is not None
    img_path = img.group(1).removeprefix(rt.settings.web.base_url)
    assert early.get(img_path).content == png(40, 30)
    assert early.get(img_path.split("?")[0]).status_code == 404
    message_img = re.search(r'<img src="([^"]+)"', html_of(sent.messages["bob@tv.example.com"]))
    assert message_img is not None  # the message's image (release token) shows before the lift
    assert early.get(message_img.group(1).removeprefix(rt.settings.web.base_url)).status_code == 200
    tampered = "?t=" + view_online(sent, "bob@tv.example.com").split("?t=")[1][:-3] + "abc"
    assert early.get(path + tampered).status_code == 404

    late = client_at(rt, AFTER_LIFT)
    public = late.get(path)
    assert public.status_code == 200 and "x-robots-tag" not in public.headers
    assert "EMBARGOED" not in public.text and 'id="disclosure"' in public.text
    assert "Hello there." in public.text  # {{ first_name | default('there') }}: no personalization
    assert "Ann" not in public.text
    assert late.get(img_path.split("?")[0]).content == png(40, 30)
    listing = late.get("/newsroom/acme")
    assert f'href="/newsroom/acme/{sent.release_id}"' in listing.text and "x-robots-tag" not in listing.headers
    feed = late.get("/newsroom/acme/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(feed.content)
    entries = root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Acme briefing on harbour policy"]
    link = entries[0].find(f"{ATOM}link")
    assert link is not None and link.get("href") == f"{rt.settings.web.base_url}{path}"


async def test_unsent_releases_and_other_clients_are_not_shown(rt: Runtime, tmp_path: Path) -> None:
    """An approved release not yet sent is neither listed nor reachable; an unknown client is 404."""
    add_contacts(rt, tmp_path, ["a@paper.example.com"])
    rid = approved_release(rt, [Variant("all", "list:press")])
    web = client_at(rt, AFTER_LIFT)
    assert web.get(f"/newsroom/harbor/{rid}").status_code == 404
    assert f"/newsroom/harbor/{rid}" not in web.get("/newsroom/harbor").text
    assert web.get("/newsroom/nobody").status_code == 404
    assert web.get(f"/newsroom/acme/{rid}").status_code == 404


async def test_a_client_may_keep_its_newsroom_out_of_search_engines(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """newsroom_noindex: every newsroom page and the feed say noindex (header and meta)."""
    sent = await send_kit_release(rt, renderer, tmp_path)
    with transaction(rt.sessions) as session:
        session.execute(update(Client).where(Client.slug == "acme").values(newsroom_noindex=True))
    web = client_at(rt, AFTER_LIFT)
    for path in ("/newsroom/acme", f"/newsroom/acme/{sent.release_id}", "/newsroom/acme/feed.atom"):
        got = web.get(path)
        assert got.status_code == 200 and got.headers["x-robots-tag"] == "noindex, nofollow", path
    assert '<meta name="robots" content="noindex, nofollow">' in web.get("/newsroom/acme").text


def test_the_client_file_sets_noindex() -> None:
    """A client file may say newsroom_noindex = true; anything but a boolean is refused."""
    assert client_fields({**CLIENT, "newsroom_noindex": True}).newsroom_noindex is True
    assert client_fields(CLIENT).newsroom_noindex is False
    with pytest.raises(InputError, match="newsroom_noindex: expected true or false"):
        client_fields({**CLIENT, "newsroom_noindex": "yes"})
