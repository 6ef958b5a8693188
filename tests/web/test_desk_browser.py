"""The whole publicist's desk in headless Chromium (issue 21, "Done when"): a publicist
writes an advisory like the sample one (two speaker groups, bios of several paragraphs,
questions, related links, a conspicuous disclosure) in the editor, previews it per
segment and per contact, sends a proof, submits; an approver requests changes; the
publicist edits and submits again; the approver approves seeing content and audience;
the publicist schedules it for a named zone; a worker sends it; the log shows it. Also:
the staff pages fit a 390 px wide phone. Screenshots go to ``test-output/``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect

from mailer.domain.states import Role
from mailer.runtime import Runtime
from mailer.store import audience as audience_store
from mailer.web import create_app
from tests.support.browser import shot_path
from tests.support.constants import FIXED_NOW
from tests.support.engine import Clock, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer, running_fault_server
from tests.support.releases import seed
from tests.support.web import EMAILS, PASSWORD, make_users
from tests.web.test_staff_browser import send_everything

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as server:
        yield server


@pytest.fixture
def desk(rt: Runtime, smtp: FaultSMTPServer) -> Iterator[str]:
    """The app (proofs through the fault server) served by uvicorn on a free port."""
    ert = engine_runtime(rt, smtp.port, Clock())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(ert.settings, clock=lambda: FIXED_NOW), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def sign_in(browser: Browser, base: str, role: Role) -> Page:
    page = browser.new_context().new_page()
    page.goto(f"{base}/login")
    page.fill('input[name="email"]', EMAILS[role])
    page.fill('input[name="password"]', PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    return page


def act(page: Page, base: str, rid: int, action: str) -> None:
    page.goto(f"{base}/releases/{rid}/confirm/{action}")
    with page.expect_navigation():
        page.click("#confirm")


def test_the_desk_from_draft_to_sent(
    rt: Runtime, browser: Browser, desk: str, smtp: FaultSMTPServer, tmp_path: Path
) -> None:
    """Write, preview, proof, submit, changes requested, edit, approve, schedule in a named zone, send, log."""
    make_users(rt, [Role.PUBLICIST, Role.APPROVER])
    seed(rt, tmp_path)
    pub = sign_in(browser, desk, Role.PUBLICIST)
    pub.goto(f"{desk}/editor/new")
    pub.fill("#f-title", "Harbour accord briefing")
    pub.fill("#f-subject", "Media advisory: the harbour accord")
    pub.fill("#f-dateline", "SPRINGFIELD, Dec. 2")
    pub.fill("#f-body", "The envoy briefs reporters.\nSecond line of the same paragraph.")
    pub.check('input[name="segments"][value="foreign-policy-print"]')
    pub.check('input[name="segments"][value="broadcast-bookers"]')
    expect(pub.locator("#audience-total")).to_contain_text("2 contacts")
    pub.select_option("#f-disclosure", "block")
    pub.fill("#g0-s0-name", "Dr. Ada Example")
    pub.fill("#g0-s0-title", "Director")
    pub.fill("#g0-s0-bio", "First paragraph of the bio.\n\nSecond paragraph of the bio.")
    pub.fill("#g1-s0-name", "Ben Sample")
    pub.fill("#g1-s0-title", "Harbour pilot")
    pub.fill("#f-questions", "What changes at the harbour?\nWho pays for the pier?")
    pub.fill("#r0-title", "The accord, explained")
    pub.fill("#r0-url", "https://acme.example.com/accord")
    pub.fill("#f-booking-name", "Pat Doe")
    pub.fill("#f-booking-email", "bookings@acme.example.com")
    pub.fill("#f-booking-phone", "+1 202 555 0147")
    expect(pub.locator("#autosaved")).to_contain_text("Draft kept", timeout=10_000)
    pub.select_option("#preview-segment", "broadcast-bookers")
    pub.fill("#preview-contact", "bob@tv.example.com")
    pub.click("#refresh-preview")
    expect(pub.locator("#live-subject")).to_have_text("Media advisory: the harbour accord", timeout=15_000)
    assert "OTHER SPEAKERS AVAILABLE" in pub.locator("#live-text").inner_text()
    assert "bob@tv.example.com" in pub.locator("#live-preview-body").inner_text()
    assert pub.locator("iframe.preview.mobile").count() == 1
    pub.screenshot(path=shot_path("desk-editor"), full_page=True)
    with pub.expect_navigation():
        pub.click("#save")
    rid = int(pub.url.rsplit("/", 1)[1])
    pub.goto(f"{desk}/releases/{rid}/confirm/proof")
    with pub.expect_navigation():
        pub.click("#confirm")
    assert "sent" in pub.locator(".flash").inner_text()
    assert smtp.copies_of(EMAILS[Role.PUBLICIST]) == 1
    act(pub, desk, rid, "submit")

    appr = sign_in(browser, desk, Role.APPROVER)
    appr.goto(f"{desk}/releases/{rid}/approval")
    assert appr.locator("#audience td.count").all_inner_texts() == ["1", "1"]
    appr.fill("#changes-note", "Name the pier in the subject.")
    with appr.expect_navigation():
        appr.click("#request-changes")

    pub.goto(f"{desk}/releases/{rid}/edit")
    pub.fill("#f-subject", "Media advisory: the harbour accord and the new pier")
    with pub.expect_navigation():
        pub.click("#save")
    act(pub, desk, rid, "submit")

    appr.goto(f"{desk}/releases/{rid}/approval")
    assert appr.locator("iframe.preview").count() == 2
    assert "Name the pier in the subject." in appr.locator("#comments").inner_text()
    assert "Never approved before." in appr.locator("#diff").inner_text()  # a diff from the first approval on
    appr.screenshot(path=shot_path("desk-approval"), full_page=True)
    with appr.expect_navigation():
        appr.click("#approve")
    assert appr.locator("#release-status").inner_text() == "approved"

    pub.goto(f"{desk}/releases/{rid}/confirm/schedule")
    pub.fill("#send-at", "2026-11-25 05:00 America/New_York")  # 10:00 UTC, an hour after the app's clock
    with pub.expect_navigation():
        pub.click("#confirm")
    assert "scheduled for 2026-11-25 10:00 UTC" in pub.locator(".flash").inner_text()
    assert pub.locator("#release-status").inner_text() == "approved"

    later = FIXED_NOW + timedelta(hours=2)
    send_everything(rt, smtp.port, clock=Clock(later))
    assert smtp.copies_of("ann@daily.example.com") == 1 and smtp.copies_of("bob@tv.example.com") == 1
    pub.goto(f"{desk}/log?release={rid}")
    assert pub.locator("#log tbody tr").count() == 2
    assert "sent" in pub.locator("#log tbody").inner_text()


def test_staff_pages_fit_a_phone(rt: Runtime, browser: Browser, desk: str, tmp_path: Path) -> None:
    """At 390 px the dashboard, releases, editor and log need no sideways scrolling of the page."""
    make_users(rt, [Role.ADMIN])
    seed(rt, tmp_path)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{desk}/login")
    page.fill('input[name="email"]', EMAILS[Role.ADMIN])
    page.fill('input[name="password"]', PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    for path in ("/", "/releases", "/editor/new", "/log", "/admin/users", "/account"):
        page.goto(f"{desk}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    page.goto(f"{desk}/editor/new")
    page.screenshot(path=shot_path("desk-editor-390"), full_page=True)
    context.close()


def test_the_audience_total_follows_the_last_change(
    rt: Runtime, browser: Browser, desk: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two segments ticked quickly, both counts in flight, the first answering first: the total shown is the last one asked (2 contacts), not lost in a replaced element."""
    make_users(rt, [Role.PUBLICIST])
    seed(rt, tmp_path)
    count = audience_store.audience_count
    delays = [0.6, 1.2]  # the first count answers while the second is still running

    def slow(*args: object, **kwargs: object) -> int:
        time.sleep(delays.pop(0) if delays else 0)
        found: int = count(*args, **kwargs)  # type: ignore[arg-type]
        return found

    monkeypatch.setattr(audience_store, "audience_count", slow)
    pub = sign_in(browser, desk, Role.PUBLICIST)
    pub.goto(f"{desk}/editor/new")
    pub.check('input[name="segments"][value="foreign-policy-print"]')
    pub.wait_for_timeout(200)  # the first count is under way
    pub.check('input[name="segments"][value="broadcast-bookers"]')
    pub.wait_for_timeout(2500)  # both answers are back
    expect(pub.locator("#audience-total")).to_contain_text("2 contacts")
