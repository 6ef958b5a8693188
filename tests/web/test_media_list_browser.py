"""The media list in headless Chromium (issue 15): upload a messy export and map its
columns, find a contact and edit it and add a note, build a segment watching the count
change, and add a domain suppression and see a release skip that domain. Screenshots go
to ``test-output/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from mailer.audience import contacts
from mailer.domain.states import Role
from mailer.runtime import Runtime
from tests.support.browser import shot_path
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, approved_release, deliveries
from tests.support.faultsmtp import FaultSMTPServer, running_fault_server
from tests.support.web import EMAILS, PASSWORD, make_users
from tests.web.test_staff_browser import send_everything

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PEOPLE = """email,first_name,last_name,outlet,outlet_type,beats,tags,region
clemence@lequotidien.example.com,Clémence,Aubert,Le Quotidien,print,politics|foreign-policy,vip,eu-west
dana@harborledger.example.com,Dana,Reyes,Harbor Ledger,online,business,,us-east
liam@example.org,Liam,O'Brien,Tis Media,tv,politics,freelance,eu-west
ana@news.example.net,Ana,Lima,Example Net News,online,politics,,us-east
bo@example.net,Bo,Berg,Net Weekly,magazine,politics,,us-east
"""
# A Windows-1252 export from a media database: ';', its own headers, extra columns, bad rows.
MESSY = (
    "E-mail Address;First Name;Last Name;Publication;Beat;Fax;Desk\r\n"
    "zoe@example.com;Zoë;Adams;Le Monde Example;politics;+1 555 0100;night\r\n"
    "not-an-address;Bad;Row;X;y;;\r\n"
    "max@example.org;Max;Müller;Wire Example;business;;day\r\n"
    "zoe@example.com;Zoë;Again;Dup;politics;;\r\n"
    "eve@example.net;Ève;Martin;Radio Example;culture;;;extra-field\r\n"
).encode("cp1252")


@pytest.fixture
def page(rt: Runtime, browser: Browser, base_url: str, tmp_path: Path) -> Iterator[Page]:
    """A signed-in admin's page on the served app, with a few contacts on list 'press'."""
    make_users(rt, [Role.ADMIN])
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    assert contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW).rejected == []
    context = browser.new_context(accept_downloads=True, base_url=base_url)
    try:
        tab = context.new_page()
        tab.goto("/login")
        tab.fill('input[name="email"]', EMAILS[Role.ADMIN])
        tab.fill('input[name="password"]', PASSWORD)
        with tab.expect_navigation():
            tab.get_by_role("button", name="Sign in").click()
        yield tab
    finally:
        context.close()


def test_upload_a_messy_export_map_columns_and_see_the_rejects(rt: Runtime, page: Page, tmp_path: Path) -> None:
    """A cp1252 ';' file with its own headers: mapped (Fax left out), imported, rejects on screen and as a download."""
    backend = rt.engine.dialect.name
    messy = tmp_path / "export.csv"
    messy.write_bytes(MESSY)
    page.goto("/contacts")
    page.click("text=Import a CSV")
    page.set_input_files("#upload-file", str(messy))
    page.fill("#upload-list", "imported")
    with page.expect_navigation(url="**/map"):
        page.click("#upload-button")
    mapping = page.locator("#mapping")
    assert mapping.locator('select[data-header="E-mail Address"]').input_value() == "email"
    assert mapping.locator('select[data-header="Publication"]').input_value() == "outlet"
    assert mapping.locator('select[data-header="Beat"]').input_value() == "beats"
    assert mapping.locator('select[data-header="Desk"]').input_value() == "attr"
    mapping.locator('select[data-header="Fax"]').select_option("skip")
    page.screenshot(path=shot_path(f"media-import-map-{backend}"), full_page=True)
    with page.expect_navigation():
        page.click("#start-import")
    expect(page.locator("#import-done")).to_be_visible(timeout=20_000)
    assert page.locator("#rejected-count").inner_text() == "3"
    expect(page.locator("#rejects tbody tr")).to_have_count(3)  # the page may still be swapping in
    lines = [row.locator("td").first.inner_text() for row in page.locator("#rejects tbody tr").all()]
    assert lines == ["3", "5", "6"]
    assert "duplicate of line 2" in page.locator("#rejects").inner_text()
    page.screenshot(path=shot_path(f"media-import-done-{backend}"), full_page=True)
    with page.expect_download() as download:
        page.click("#rejects-download")
    assert Path(download.value.path()).read_text().splitlines()[0] == "line,reason"
    page.goto("/contacts?q=zoe")
    assert "Le Monde Example" in page.locator("#contact-list").inner_text()


def test_find_a_contact_edit_it_and_add_a_note(page: Page, rt: Runtime) -> None:
    """Typing 'ledg' narrows the list live; the contact's outlet is edited (logged) and a note added."""
    backend = rt.engine.dialect.name
    page.goto("/contacts")
    page.locator("#contact-search").press_sequentially("ledg", delay=40)
    expect(page.locator("#contact-list tbody tr")).to_have_count(1, timeout=5_000)
    with page.expect_navigation():
        page.click("#contact-list a.contact")
    assert page.locator("#contact-email").inner_text() == "dana@harborledger.example.com"
    page.click("#edit summary")
    page.fill('#edit-form input[name="outlet"]', "Bay Courier")
    page.select_option('#edit-form select[name="outlet_type"]', "magazine")
    with page.expect_navigation():
        page.click("#save-contact")
    assert "saved: outlet, outlet_type changed" in page.locator(".flash.ok").inner_text()
    assert page.locator("#f-outlet_type").inner_text() == "magazine"
    assert "Harbor Ledger → Bay Courier" in page.locator("#changes").inner_text()
    page.fill("#note-text", "Prefers a call before 10am")
    with page.expect_navigation():
        page.click("#add-note")
    notes = page.locator("#note-list").inner_text()
    assert "Prefers a call before 10am" in notes and EMAILS[Role.ADMIN] in notes
    page.screenshot(path=shot_path(f"media-contact-{backend}"), full_page=True)


def test_build_a_segment_watching_the_count_change(page: Page, rt: Runtime) -> None:
    """The count follows the rule as it is typed; a broken rule points at its column; the segment is saved."""
    backend = rt.engine.dialect.name
    page.goto("/segments")
    page.click("#new-segment")
    rule = page.locator("#segment-rule")
    rule.press_sequentially("beat:politics", delay=20)
    expect(page.locator("#segment-count")).to_have_text("4", timeout=5_000)
    rule.press_sequentially(" AND region:eu-west", delay=20)
    expect(page.locator("#segment-count")).to_have_text("2", timeout=5_000)
    rule.press_sequentially(" AND (", delay=20)
    expect(page.locator("#rule-error")).to_contain_text("column", timeout=5_000)
    rule.press("Backspace")
    rule.press("Backspace")
    rule.press("Backspace")
    rule.press("Backspace")
    rule.press("Backspace")
    rule.press_sequentially("AND beat:foreign-polcy", delay=20)
    expect(page.locator("#segment-preview")).to_contain_text("matches no contact", timeout=5_000)
    expect(page.locator("#segment-count")).to_have_text("0")
    rule.fill("")
    rule.press_sequentially("beat:politics AND region:eu-west", delay=10)
    expect(page.locator("#segment-count")).to_have_text("2", timeout=5_000)
    page.fill("#segment-slug", "eu-politics")
    with page.expect_navigation():
        page.click("#save-segment")
    assert "saved segment eu-politics" in page.locator(".flash.ok").inner_text()
    assert page.locator("#segment-count").inner_text() == "2"
    page.screenshot(path=shot_path(f"media-segment-{backend}"), full_page=True)


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as server:
        yield server


def test_a_domain_suppression_makes_a_release_skip_that_domain(page: Page, rt: Runtime, smtp: FaultSMTPServer) -> None:
    """'@example.net' added on the suppressions page: the release sends to everyone but bo@example.net; ana@news.example.net (a subdomain) still gets it."""
    backend = rt.engine.dialect.name
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    page.goto("/suppressions")
    page.fill("#suppress-target", "*@example.net")
    with page.expect_navigation():
        page.click("#suppress")
    assert "'@example.net'" in page.locator(".flash.error").inner_text()
    page.fill("#suppress-target", "@example.net")
    page.fill('input[name="note"]', "the whole outlet asked to stop")
    with page.expect_navigation():
        page.click("#suppress")
    assert page.locator("#suppression-list code.domain").inner_text() == "@example.net"
    page.screenshot(path=shot_path(f"media-suppressions-{backend}"), full_page=True)

    send_everything(rt, smtp.port)
    rows = deliveries(rt, rid)
    assert rows["bo@example.net"].status == "suppressed"
    assert rows["ana@news.example.net"].status == "sent"
    assert smtp.copies_of("bo@example.net") == 0 and smtp.copies_of("ana@news.example.net") == 1
    page.goto("/contacts/bo@example.net")
    assert "@example.net" in page.locator("#suppressions").inner_text()
    assert "suppressed" in page.locator("#deliveries").inner_text()
