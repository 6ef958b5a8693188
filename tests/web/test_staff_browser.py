"""The staff UI in headless Chromium (Debian's, through Playwright) against uvicorn:
sign in, approve a submitted release, watch it send through an in-process worker to
the fault-injecting SMTP server (one recipient refused 550 5.1.1), filter the delivery
log to the failed row, open that contact's history, export the CSV. Screenshots of the
main pages go to ``test-output/``.

Under CI the browser must be there and this runs; locally it skips when /usr/bin/chromium
is missing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from mailer.domain.states import ReleaseStatus, Role
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.pool import SmtpPool
from mailer.store.db import transaction
from mailer.store.tables import Release
from tests.support.browser import shot_path
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer, running_fault_server
from tests.support.web import EMAILS, PASSWORD, make_users

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEAD = "dead@example.com"
PEOPLE = ["ann@example.com", "bob@example.net", DEAD]


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    """The fault server, refusing DEAD at RCPT with 550 5.1.1."""
    with running_fault_server() as server:
        server.rcpt_reply[DEAD] = "550 5.1.1 No such user"
        yield server


def send_everything(rt: Runtime, port: int, *, clock: Clock | None = None) -> None:
    """One in-process worker pass: plan the due release and send it all (in a thread of
    its own: Playwright's sync API keeps an event loop running in this one)."""
    ert = engine_runtime(rt, port, clock or Clock())

    async def run() -> None:
        pool = SmtpPool(ert.settings.smtp)
        try:
            await Dispatcher(ert, pool).run_once()
        finally:
            await pool.close()

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=target)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and not errors, errors


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill('input[name="email"]', EMAILS[Role.APPROVER])
    page.fill('input[name="password"]', PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.locator("#whoami").inner_text().startswith("Approver User")


def test_approve_watch_send_filter_and_export(
    rt: Runtime, browser: Browser, base_url: str, smtp: FaultSMTPServer, tmp_path: Path
) -> None:
    """Approve in the browser, see the send finish live, find the 550 row, its contact history, and its CSV."""
    backend = rt.engine.dialect.name
    make_users(rt, [Role.APPROVER])
    add_contacts(rt, tmp_path, PEOPLE)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as session:
        session.execute(update(Release).where(Release.id == rid).values(status=ReleaseStatus.SUBMITTED.value))
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        sign_in(page, base_url)
        page.screenshot(path=shot_path(f"staff-dashboard-{backend}"), full_page=True)

        page.goto(f"{base_url}/releases/{rid}")
        page.click("#action-approve")
        assert page.locator("h1").inner_text().startswith("Approval:")  # the approval page (issue 21)
        with page.expect_navigation():
            page.click("#approve")
        assert page.locator("#release-status").inner_text() == "approved"
        assert page.locator(".flash.ok").inner_text().startswith("approved")

        send_everything(rt, smtp.port)
        # htmx polls the progress fragment: the page shows the end without a reload.
        expect(page.locator("#release-status")).to_have_text("partial", timeout=15_000)  # one row failed
        assert page.locator("#total").inner_text() == "3"
        page.reload()
        assert page.locator("#sent-chart rect.bar").count() >= 1
        page.screenshot(path=shot_path(f"staff-release-{backend}"), full_page=True)
        assert smtp.copies_of("ann@example.com") == 1 and smtp.copies_of(DEAD) == 0

        page.goto(f"{base_url}/log")
        page.fill('input[name="release"]', str(rid))
        page.select_option('select[name="status"]', "failed")
        with page.expect_navigation():
            page.click("#apply-filters")
        rows = page.locator("#log tbody tr")
        assert rows.count() == 1
        assert DEAD in rows.first.inner_text() and "550" in rows.first.inner_text()
        page.screenshot(path=shot_path(f"staff-log-{backend}"), full_page=True)

        with page.expect_download() as download_info:
            page.click("#export-csv")
        exported = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
        assert [(r["email"], r["status"], r["last_code"]) for r in exported] == [(DEAD, "failed", "550")]

        with page.expect_navigation():
            page.click("#log a.contact")
        assert page.locator("#contact-email").inner_text() == DEAD
        assert "No such user" in page.locator("#deliveries").inner_text()
        assert "hard_bounce" in page.locator("#suppressions").inner_text()
        page.screenshot(path=shot_path(f"staff-contact-{backend}"), full_page=True)

        for name in ("bounces", "suppressions"):
            page.goto(f"{base_url}/{name}")
            page.screenshot(path=shot_path(f"staff-{name}-{backend}"), full_page=True)
        page.goto(f"{base_url}/releases/{rid}/preview")
        assert page.locator("#preview-frame").get_attribute("sandbox") == ""
        page.screenshot(path=shot_path(f"staff-preview-{backend}"), full_page=True)
    finally:
        context.close()
