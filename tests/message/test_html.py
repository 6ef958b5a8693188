"""The HTML part for real mail programs: a preheader, an Outlook (MSO) ghost table around
the 640 px card, sections as tables, light/dark color schemes; header lines folded ≤ 78."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from mailer.config import DkimSettings
from mailer.message import Renderer
from mailer.message.dkim import DkimSigner
from mailer.message.outlook import tables_for_divs
from mailer.releases.source import parse_release
from tests.support.constants import TEMPLATES
from tests.support.dkim import DOMAIN, SELECTOR
from tests.support.releases import RELEASE
from tests.support.render import ANN, DATE, make_spec


def rendered(**changes: object) -> bytes:
    return (
        Renderer(TEMPLATES)
        .compile(make_spec(template="media_advisory", **changes))
        .render(
            ANN,
            to_addr=ANN.email,
            message_id="<m.0123456789abcdef0123456789abcdef@acme.example.com>",
            # as long as real ones (Tokens.unsubscribe_url, Tokens.mailto_unsubscribe for a 7-digit id)
            unsubscribe_url="https://news.acme.example.com/u/MTIzNDU2Nw.Nqi2ZBFuwPgJtjRpJa2spA31pLQ",
            unsubscribe_mailto="mailto:unsubscribe+1234567-4acfabd216cacf2a@bounces.acme.example.com",
            date=DATE,
        )
    )


def html_of(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def preheader(html: str) -> str:
    m = re.search(r'<div class="preheader" style="([^"]*)">(.*?)</div>', html, re.S)
    assert m is not None
    assert "display: none" in m.group(1) and "mso-hide: all" in m.group(1)
    return m.group(2)


def test_preheader_defaults_to_the_first_sentence_and_front_matter_wins() -> None:
    """Without a preheader the body's first sentence (no markup, no URL) leads the HTML, hidden; a given one replaces it."""
    body = "**New:** the [report](https://acme.example.com/r) is out today. More follows.\n"
    default = preheader(html_of(rendered(body_markdown=body)))
    assert default.startswith("New: the report is out today.")
    assert "More follows" not in default and "https://" not in default
    given = preheader(html_of(rendered(body_markdown=body, preheader="Three officials, Dec. 1-3 & more")))
    assert given.startswith("Three officials, Dec. 1-3 &amp; more")


def test_preheader_is_front_matter() -> None:
    """A release file may set preheader (at most 200 characters)."""
    text = RELEASE.replace(
        'template = "media_advisory"', 'template = "media_advisory"\npreheader = "Talks open Dec. 2"'
    )
    assert parse_release(text).preheader == "Talks open Dec. 2"
    assert parse_release(text).extra()["preheader"] == "Talks open Dec. 2"


def test_outlook_ghost_table_wraps_the_640px_card() -> None:
    """An MSO-only table of width 640 opens before the card and closes after it; the card itself is fluid."""
    html = html_of(rendered())
    opening = html.index("<!--[if mso]><table")
    card = html.index('<table class="container"')
    closing = html.index("<!--[if mso]></td></tr></table><![endif]-->")
    assert opening < card < closing
    assert 'width="640"' in html[opening:card]
    assert "max-width: 640px" in html[card : html.index(">", card)]


def test_sections_are_tables_and_colors_have_a_dark_scheme() -> None:
    """Only the preheader stays a div; section margins became cell padding; light/dark schemes are declared."""
    html = html_of(rendered())
    assert re.findall(r"<div\b[^>]*>", html) == [re.search(r'<div class="preheader"[^>]*>', html).group(0)]  # type: ignore[union-attr]
    assert re.search(r'<td class="about" style="[^"]*padding: 24px 0 0 0;', html)
    assert '<meta name="color-scheme" content="light dark">' in html
    dark = re.search(r"@media \(prefers-color-scheme: dark\) \{(.*?)\n\}", html, re.S)
    assert dark is not None and ".container { background-color: #1c2128 !important; }" in dark.group(1)


def test_every_header_line_is_folded_to_78(dkim_keys: tuple[Path, bytes]) -> None:
    """Signed, every header line (Content-Type, List-Unsubscribe, DKIM-Signature included) is at most 78 characters."""
    signer = DkimSigner.from_settings(DkimSettings(key_file=dkim_keys[0], selector=SELECTOR, domain=DOMAIN))
    assert signer is not None
    raw = signer.sign(rendered())
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    too_long = [line for line in head.split("\r\n") if len(line) > 78]
    assert too_long == []
    assert "Content-Type: multipart/alternative;\r\n boundary=" in head


def test_tables_for_divs_keeps_nesting_and_hidden_divs() -> None:
    """Nested divs become nested one-cell tables; a hidden div stays; margin becomes padding unless padding is set."""
    html = (
        '<div class="a" style="margin: 4px 0;"><div style="margin-top: 2px;padding: 1px;">x</div></div>'
        '<div style="display: none;">pre</div>'
    )
    out = tables_for_divs(html)
    assert out.count("<table") == 2 and out.count("</td></tr></table>") == 2
    assert '<td class="a" style="padding: 4px 0;">' in out
    assert '<td style="margin-top: 2px;padding: 1px;">' in out
    assert out.endswith('<div style="display: none;">pre</div>')
    assert tables_for_divs("<div>unclosed") == "<div>unclosed"
