"""The unsubscribe page in headless Chromium (Debian's, through Playwright) against uvicorn.

Under CI the browser must be there and these tests run; locally they skip when
/usr/bin/chromium is missing (`make /usr/bin/chromium` installs it).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from tests.support.browser import shot_path
from tests.support.web import DANA, scopes, seed_delivery, snapshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_unsubscribe_from_everyone_in_the_browser(rt: Runtime, browser: Browser, base_url: str) -> None:
    """Open the page (nothing changes), click 'Unsubscribe from everyone', see the confirmation, find the global suppression."""
    seeded = seed_delivery(rt)
    backend = rt.engine.dialect.name
    link = f"{base_url}/u/{Tokens.from_settings(rt.settings).unsubscribe(seeded.delivery_id)}"
    before = snapshot(rt)
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(link)
        assert response is not None and response.status == 200
        assert response.headers["x-robots-tag"].startswith("noindex")
        assert page.locator('meta[name="robots"]').get_attribute("content") == "noindex, nofollow"
        assert page.locator("#address").inner_text() == "d***@harborledger.example.com"
        assert "Acme Examplia Trade Office" in page.locator("#choice-client").inner_text()
        page.screenshot(path=shot_path(f"unsubscribe-page-{backend}"), full_page=True)
        assert snapshot(rt) == before  # loading and rendering the page changed nothing

        with page.expect_navigation():
            page.get_by_role("button", name="Unsubscribe from everyone").click()
        assert page.url == link  # answered in place: no redirect
        assert page.locator("#done").inner_text() == "You are unsubscribed"
        assert "from anyone we send for" in page.content()
        page.screenshot(path=shot_path(f"unsubscribed-{backend}"), full_page=True)
        assert context.cookies() == []
    finally:
        context.close()
    assert scopes(rt, DANA) == {"*"}


def test_page_after_one_click_offers_only_everyone(rt: Runtime, browser: Browser, base_url: str) -> None:
    """After a one-click unsubscribe from this client, the page says so and offers only 'everyone'."""
    seeded = seed_delivery(rt)
    link = f"{base_url}/u/{Tokens.from_settings(rt.settings).unsubscribe(seeded.delivery_id)}"
    context = browser.new_context()
    try:
        page = context.new_page()
        one_click = page.request.post(link, form={"List-Unsubscribe": "One-Click"}, max_redirects=0)
        assert one_click.status == 200
        page.goto(link)
        assert "already unsubscribed from releases sent for" in page.locator("#state").inner_text()
        assert page.locator("#choice-client").count() == 0
        assert page.locator("#choice-all").is_visible()
        page.screenshot(path=shot_path(f"after-one-click-{rt.engine.dialect.name}"), full_page=True)
    finally:
        context.close()
    assert scopes(rt, DANA) == {"acme"}
