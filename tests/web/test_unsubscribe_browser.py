"""The unsubscribe page in headless Chromium (Debian's, through Playwright) against uvicorn.

Under CI the browser must be there and these tests run; locally they skip when
/usr/bin/chromium is missing (`make /usr/bin/chromium` installs it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from conftest import FIXED_NOW, REPO
from playwright.sync_api import Browser, sync_playwright
from test_unsubscribe_web import DANA, scopes, seed_delivery, snapshot

from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-output"
# Everything but our own server resolves to a dead address: the page may load nothing
# from the outside world, and a test that tried would fail instead of reaching out.
CHROMIUM_ARGS = ["--host-resolver-rules=MAP * 127.0.0.254 , EXCLUDE localhost , EXCLUDE 127.0.0.1", "--no-sandbox"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, shared by the module's tests."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required under CI (run `make {CHROMIUM}`)")
        pytest.skip(f"{CHROMIUM} not installed (run `make {CHROMIUM}`)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def base_url(rt: Runtime) -> Iterator[str]:
    """The app served by uvicorn in a thread on 127.0.0.1 and a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(rt.settings, clock=lambda: FIXED_NOW), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def shot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


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
