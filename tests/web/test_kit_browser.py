"""A journalist opens a received message in headless Chromium: the kit image shows, "View
online" opens the embargoed release's newsroom page (their token), the fact sheet
downloads from it, and the download is recorded for their delivery only."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from mailer.config import AssetSettings, Settings
from mailer.message import Renderer
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import assets as asset_store
from mailer.store.db import transaction
from tests.support.browser import shot_path
from tests.support.engine import deliveries
from tests.support.kit import Sent, html_of, pdf, send_kit_release

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"assets": AssetSettings(dir=tmp_path / "assets")})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def send_in_a_thread(rt: Runtime, renderer: Renderer, tmp_path: Path) -> Sent:
    """The kit release sent on an event loop of its own (Playwright's sync API owns this thread's)."""
    result: list[Sent] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(send_kit_release(rt, renderer, tmp_path))))
    thread.start()
    thread.join(timeout=120)
    assert result, "sending failed"
    return result[0]


def test_a_journalist_opens_view_online_and_downloads_the_fact_sheet(
    rt: Runtime, renderer: Renderer, browser: Browser, base_url: str, tmp_path: Path
) -> None:
    """Ann's message: its image loads, View online shows the embargoed page, the PDF downloads and is recorded as hers."""
    sent = send_in_a_thread(rt, renderer, tmp_path)
    backend = rt.engine.dialect.name
    # the message as her mail program shows it, its links pointed at the test server
    message = html_of(sent.messages["ann@daily.example.com"]).replace(rt.settings.web.base_url, base_url)
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.set_content(message, wait_until="load")
        assert page.evaluate("document.querySelector('.kit img').naturalWidth") == 40  # shown before the lift
        page.screenshot(path=shot_path(f"kit-message-{backend}"), full_page=True)
        with page.expect_navigation():
            page.get_by_role("link", name="View online").click()
        assert page.url.startswith(f"{base_url}/newsroom/acme/{sent.release_id}?t=")
        assert "EMBARGOED until 1 December 2027" in page.locator("#embargo").inner_text()
        assert page.locator("#title").inner_text() == "Acme briefing on harbour policy"
        assert "Examplia" in page.locator("#disclosure").inner_text()
        assert page.evaluate("document.querySelector('#kit img').naturalWidth") == 40
        page.screenshot(path=shot_path(f"kit-newsroom-{backend}"), full_page=True)
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Fact sheet").click()
        download = download_info.value
        assert download.suggested_filename == "facts.pdf"
        saved = tmp_path / "downloaded.pdf"
        download.save_as(saved)
        assert saved.read_bytes() == pdf()
    finally:
        context.close()
    rows = deliveries(rt, sent.release_id)
    with transaction(rt.sessions) as session:
        who = asset_store.contacts_who_downloaded(session, sent.release_id)
    assert [(d.email, d.delivery_id, d.downloads) for d in who] == [
        ("ann@daily.example.com", rows["ann@daily.example.com"].id, 1)
    ]
