"""Per-recipient kit links: each message's asset links carry that delivery's signed token;
a download is recorded as that delivery's event (history, release page, report,
contacts_who_downloaded); bad tokens and other releases' tokens get the unsubscribe 404."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailer.config import AssetSettings, Settings
from mailer.domain.states import Role
from mailer.engine.dispatch import Dispatcher
from mailer.message import Renderer
from mailer.message.tokens import Tokens
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import assets as asset_store
from mailer.store.db import transaction
from mailer.store.ledger.history import contact_history
from mailer.store.ledger.report import release_report
from tests.support.engine import Variant, add_contacts, approved_release, deliveries
from tests.support.fake_transport import FakeTransport
from tests.support.kit import html_of, pdf, send_kit_release, text_of
from tests.support.web import app_for, make_users, sign_in

KIT_LINK = re.compile(r"https?://[^\s<>\"]+/kit/[^\s<>\"]+")


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"assets": AssetSettings(dir=tmp_path / "assets")})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


async def test_a_download_is_recorded_for_the_right_delivery(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """Ann's PDF link serves the file and records "downloaded the kit" on Ann's delivery only:
    her history, the report, the release page and contacts_who_downloaded show it."""
    sent = await send_kit_release(rt, renderer, tmp_path)
    ann = sent.messages["ann@daily.example.com"]
    links = KIT_LINK.findall(text_of(ann))
    assert len(links) == 2 and all(link.startswith(rt.settings.web.base_url) for link in links)
    bob_links = KIT_LINK.findall(text_of(sent.messages["bob@tv.example.com"]))
    assert set(links).isdisjoint(bob_links)  # tokens are per delivery
    pdf_link = next(link for link in links if link.endswith("/facts.pdf"))
    assert f'href="{pdf_link}"' in html_of(ann)
    client = TestClient(app_for(rt))
    path = pdf_link.removeprefix(rt.settings.web.base_url)
    assert client.head(path).status_code == 200  # a link checker: not recorded
    got = client.get(path)
    assert got.status_code == 200 and got.content == pdf()
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"] == 'attachment; filename="facts.pdf"'
    rows = deliveries(rt, sent.release_id)
    with transaction(rt.sessions) as session:
        who = asset_store.contacts_who_downloaded(session, sent.release_id)
        assert [(d.email, d.delivery_id, d.downloads) for d in who] == [
            ("ann@daily.example.com", rows["ann@daily.example.com"].id, 1)
        ]
        history = contact_history(session, "ann@daily.example.com")
        assert history is not None
        assert [(e.kind, e.detail) for e in history.events if e.kind == "downloaded"] == [
            ("downloaded", "downloaded the kit: facts.pdf")
        ]
        bob = contact_history(session, "bob@tv.example.com")
        assert bob is not None and not [e for e in bob.events if e.kind == "downloaded"]
        report = release_report(session, sent.release_id)
        assert (report.kit_downloads, report.kit_downloaders) == (1, 1)
    make_users(rt, [Role.VIEWER])
    page = sign_in(client.app, Role.VIEWER).get(f"/releases/{sent.release_id}")  # type: ignore[arg-type]
    assert "Downloads: 1 by 1 recipients" in page.text and "ann@daily.example.com" in page.text


async def test_images_show_from_hosted_urls_without_naming_the_reader(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """The <img> src is the newsroom URL with the release's token, the same for every
    recipient (no tracking pixel); fetching it records nothing."""
    sent = await send_kit_release(rt, renderer, tmp_path)
    srcs = {address: re.findall(r'<img src="([^"]+)"', html_of(msg)) for address, msg in sent.messages.items()}
    assert srcs["ann@daily.example.com"] == srcs["bob@tv.example.com"] and len(srcs["bob@tv.example.com"]) == 1
    src = srcs["ann@daily.example.com"][0]
    assert "/kit/" not in src and f"/newsroom/acme/{sent.release_id}/assets/" in src and "?k=" in src
    with transaction(rt.sessions) as session:
        assert asset_store.contacts_who_downloaded(session, sent.release_id) == []


async def test_bad_and_foreign_tokens_get_the_unsubscribe_404(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """A tampered token, an unsubscribe token, a token of another release's delivery: the
    same 404 page as a bad unsubscribe link; nothing is recorded."""
    sent = await send_kit_release(rt, renderer, tmp_path)
    add_contacts(rt, tmp_path, ["zed@other.example.org"], list_slug="other")
    other = approved_release(rt, [Variant("other", "list:other")])
    await Dispatcher(rt, FakeTransport()).run_once()
    other_delivery = deliveries(rt, other)["zed@other.example.org"].id
    ann_delivery = deliveries(rt, sent.release_id)["ann@daily.example.com"].id
    with transaction(rt.sessions) as session:
        asset_id = asset_store.release_assets(session, sent.release_id)[1].id
    tokens = Tokens.from_settings(rt.settings)
    good = tokens.kit(ann_delivery)
    client = TestClient(app_for(rt))
    reference = client.get("/u/not-a-token")
    assert reference.status_code == 404
    for token in (good[:-2] + "xx", tokens.unsubscribe(ann_delivery), tokens.kit(other_delivery), tokens.kit(999999)):
        got = client.get(f"/kit/{token}/{asset_id}/facts.pdf")
        assert (got.status_code, got.content) == (404, reference.content)
    assert client.get(f"/kit/{good}/99999999999/facts.pdf").status_code == 404
    with transaction(rt.sessions) as session:
        assert asset_store.download_counts(session, sent.release_id) == (0, 0)
