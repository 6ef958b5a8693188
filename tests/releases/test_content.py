"""What a real advisory carries (issue 21, problem 8): several speaker groups, bios of several
paragraphs, related articles, an editable questions heading, single line breaks, a linked
booking contact without a double label, a conspicuous disclosure, a variant's own body;
and the release file written back from the database parses to the same release."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.config import Settings, WebSettings
from mailer.domain.errors import InputError
from mailer.message import Renderer
from mailer.releases.approval import submit_release
from mailer.releases.plan import renderer_for
from mailer.releases.preview import preview_release
from mailer.releases.release_text import release_file
from mailer.releases.source import parse_release
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.releases import BASE_URL, create, seed

ADVISORY = (Path(__file__).parent / "data" / "advisory.md").read_text("utf-8")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def _parts(rt: Runtime, renderer: Renderer, rid: int, segment: str) -> tuple[str, str]:
    with transaction(rt.sessions) as session:
        preview = preview_release(
            session,
            rid,
            segment_slug=segment,
            contact_email=None,
            renderer=renderer,
            settings=rt.settings,
            now=rt.clock(),
        )
    assert preview.eml is not None
    msg = email.message_from_bytes(preview.eml, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return str(text.get_content()), str(html.get_content())


def test_the_sample_advisory_renders_everything_it_carries(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """Both speaker groups, paragraphs and line breaks, related link, heading, booking links, disclosure block."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, ADVISORY)
    with transaction(rt.sessions) as session:
        submit_release(session, rid, actor="pat", renderer=renderer, settings=rt.settings, now=rt.clock())
    text, html = _parts(rt, renderer, rid, "foreign-policy-print")
    assert "AVAILABLE FOR INTERVIEW" in text and "OTHER SPEAKERS AVAILABLE" in text
    assert "- Ben Sample, Harbour pilot" in text and "- Cy Placeholder" in text
    assert "<h2>Other speakers available</h2>" in html.replace(
        ' style="margin: 28px 0 10px 0;font-size: 19px;line-height: 1.3;color: #111827;"', ""
    )
    assert html.count('class="speaker-bio"') == 2  # two paragraphs of one bio
    assert "She chaired the 2024 pier commission.<br>Her report is due in January." in html
    assert "QUESTIONS OUR SPEAKERS EXPECT" in text and "Questions our speakers expect" in html
    assert "The harbour accord, explained: https://acme.example.com/accord" in text
    assert 'href="https://acme.example.com/accord"' in html
    assert "To book an interview: Pat Doe, Acme PR" in text and "To book an interview: To book" not in text
    assert 'href="mailto:bookings@acme.example.com"' in html and 'href="tel:+12025550147"' in html
    assert 'class="disclosure-block"' in html and html.index("disclosure-block") < html.index("<h1")
    assert "Line two of the same paragraph." in text and "accord.<br>\r\nLine two" in html


def test_a_variant_may_replace_the_body(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """The broadcast bookers' variant has its own body; the other segment keeps the release's."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, ADVISORY)
    text, html = _parts(rt, renderer, rid, "broadcast-bookers")
    assert "Studio and remote slots on" in text and "The envoy will brief" not in text
    assert "<strong>December 3</strong>" in html
    other, _ = _parts(rt, renderer, rid, "foreign-policy-print")
    assert "The envoy will brief reporters" in other


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('url = "https://acme.example.com/accord"', 'url = "http://acme.example.com/accord"'),
        ('phone = "+1 202 555 0147"', 'phone = "call me"'),
        ('disclosure_placement = "block"', 'disclosure_placement = "top"'),
    ],
)
def test_bad_new_fields_are_named(change: str, problem: str) -> None:
    """An http related link, a phone that is no number, an unknown placement: one error naming the key."""
    with pytest.raises(InputError, match=r"^(related\[1\]\.url|booking\.phone|disclosure_placement):"):
        parse_release(ADVISORY.replace(change, problem))


def test_the_release_file_round_trips(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """release_file(stored release) parses back to what the original file parsed to."""
    seed(rt, tmp_path)
    rid = create(rt, renderer, ADVISORY)
    with transaction(rt.sessions) as session:
        text = release_file(session, rid)
    assert parse_release(text) == parse_release(ADVISORY)


def test_the_release_file_keeps_local_hour_named_zone_embargo_and_reply_to(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """A web edit rewrites the file: send_at_local, timezone, an embargo in a named zone and reply_to survive it."""
    extra = (
        'send_at_local = "2027-12-02 09:00"\ntimezone = "Europe/London"\n'
        'embargo = "2027-12-03 09:00 America/New_York"\nreply_to = "pat@acme.example.com"\n'
    )
    original = ADVISORY.replace('template = "media_advisory"\n', 'template = "media_advisory"\n' + extra, 1)
    seed(rt, tmp_path)
    rid = create(rt, renderer, original)
    with transaction(rt.sessions) as session:
        text = release_file(session, rid)
    assert 'embargo = "2027-12-03 09:00 America/New_York"' in text and "send_at =" not in text
    again = parse_release(text)
    assert again == parse_release(original)
    assert (again.send_at_local, again.timezone, again.embargo_zone, again.reply_to) == (
        "2027-12-02 09:00",
        "Europe/London",
        "America/New_York",
        "pat@acme.example.com",
    )
