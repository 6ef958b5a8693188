"""The card at Outlook width, in headless Chromium: Word-based Outlook ignores max-width
and reads the MSO conditional comments. Simulated here by deleting every max-width and
turning the conditional markup on: the ghost table keeps the card at 640 px in a wide
window (and without it the card would stretch). Dark mode keeps the text legible."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser

from mailer.message import Renderer
from tests.support.constants import TEMPLATES
from tests.support.render import ANN, make_spec

pytestmark = pytest.mark.slow


def html() -> str:
    variant = Renderer(TEMPLATES).compile(make_spec(template="media_advisory"))
    return variant.render_parts(ANN, to_addr=ANN.email, unsubscribe_url="https://news.acme.example.com/u/t").html


def as_outlook(page_html: str, *, ghost: bool = True) -> str:
    """What the Word engine sees: no max-width, the [if mso] markup in force (or, to
    compare, removed)."""
    without_max = re.sub(r"max-width:\s*[^;\"]+;?", "", page_html)
    if ghost:
        return without_max.replace("<!--[if mso]>", "").replace("<![endif]-->", "")
    return re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", without_max, flags=re.S)


def card_width(browser: Browser, content: str, *, scheme: str = "light") -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 900}, color_scheme=scheme)  # type: ignore[arg-type]
    try:
        page.set_content(content)
        box = page.locator("table.container").bounding_box()
        assert box is not None
        return float(box["width"])
    finally:
        page.close()


def test_card_stays_640px_at_outlook_width(browser: Browser) -> None:
    """With max-width gone and the MSO ghost table in force, the card is 640 px wide in a 1400 px window."""
    assert card_width(browser, as_outlook(html())) == 640


def test_without_the_ghost_table_the_card_would_stretch(browser: Browser) -> None:
    """The control: no max-width and no ghost table stretches the card to the window (what Outlook did before)."""
    assert card_width(browser, as_outlook(html(), ghost=False)) > 1000


def test_normal_clients_keep_the_card_at_640_and_fluid_below(browser: Browser) -> None:
    """In an ordinary client max-width holds the card at 640 px; on a 375 px phone it fits the screen."""
    assert card_width(browser, html()) == 640
    page = browser.new_page(viewport={"width": 375, "height": 800})
    try:
        page.set_content(html())
        box = page.locator("table.container").bounding_box()
        assert box is not None and box["width"] <= 375
    finally:
        page.close()


def test_dark_scheme_turns_the_card_dark_with_light_text(browser: Browser) -> None:
    """prefers-color-scheme: dark gives a dark card and light body text (legible: contrast stays high)."""
    page = browser.new_page(viewport={"width": 900, "height": 900}, color_scheme="dark")
    try:
        page.set_content(html())
        card = page.locator("table.container").evaluate("e => getComputedStyle(e).backgroundColor")
        text = page.locator("td.content").evaluate("e => getComputedStyle(e).color")
        heading = page.locator("h1").evaluate("e => getComputedStyle(e).color")
    finally:
        page.close()
    assert card == "rgb(28, 33, 40)"
    assert text == "rgb(230, 232, 235)" and heading == "rgb(245, 246, 247)"
