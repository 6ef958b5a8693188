"""Rendering: sandbox, errors, header safety, MIME structure, fingerprints, templates."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import shutil
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.domain.errors import HeaderInjectionError, InputError, TemplateError
from mailer.message import (
    CompiledVariant,
    Recipient,
    Renderer,
    Speaker,
    check_header_value,
    fingerprint,
)
from mailer.message.spec import Variant
from tests.support.constants import TEMPLATES
from tests.support.render import ANN, BODY, DATE, DISCLOSURE, SENDER, UNSUB, make_spec


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


def render(variant: Variant, rcpt: Recipient = ANN, **kw: object) -> bytes:
    args: dict[str, object] = {
        "to_addr": rcpt.email,
        "message_id": "<d1.42@acme.example.com>",
        "unsubscribe_url": UNSUB,
        "unsubscribe_mailto": "mailto:unsub+tok123@acme.example.com",
        "date": DATE,
    }
    args.update(kw)
    return variant.render(rcpt, **args)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> tuple[str, str]:
    text_part, html_part = list(msg.iter_parts())
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    return str(text_part.get_content()), str(html_part.get_content())


def copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


# ------------------------------------------------------------------------ sandbox


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "{{ ''.__class__.__mro__ }}"},
        {"body_markdown": "Intro\n\n{{ sender.__init__.__globals__ }}"},
        {"body_markdown": "{{ sender['__init__'] }}"},
        {"intro": "{{ speakers.__class__.__name__ }}"},
    ],
)
def test_sandbox_escape_is_refused(renderer: Renderer, changes: dict[str, str]) -> None:
    """A user-authored template reaching for dunder attributes fails with TemplateError."""
    with pytest.raises(TemplateError, match="sandbox"):
        render(renderer.compile(make_spec(**changes)))


def test_sandbox_escape_through_filter_is_refused_at_render(renderer: Renderer) -> None:
    """An escape the static check cannot see is stopped by the sandbox at render time."""
    variant = renderer.compile(make_spec(body_markdown="Hi\n\n{% set n = '__in' ~ 'it__' %}{{ sender[n] }}"))
    with pytest.raises(TemplateError, match="sandbox") as info:
        render(variant)
    assert info.value.template == "body"
    assert info.value.line == 3


# ------------------------------------------------------------------ error reports


def test_undefined_name_in_body_reports_template_and_line(renderer: Renderer) -> None:
    """A typo'd variable on line 3 of the body is reported as body, line 3, at compile."""
    spec = make_spec(body_markdown="First paragraph.\n\nHello {{ frist_name }}!")
    with pytest.raises(TemplateError) as info:
        renderer.compile(spec)
    assert info.value.template == "body"
    assert info.value.line == 3
    assert "frist_name" in str(info.value)
    assert str(info.value).startswith("body, line 3:")


def test_undefined_name_in_subject_is_reported(renderer: Renderer) -> None:
    """A typo in the subject names the subject template."""
    with pytest.raises(TemplateError) as info:
        renderer.compile(make_spec(subject="Hi {{ firstname }}"))
    assert (info.value.template, info.value.line) == ("subject", 1)


def test_undefined_attribute_at_render_reports_original_line(renderer: Renderer) -> None:
    """A missing attribute key fails at render with the Markdown source line, not the HTML's."""
    variant = renderer.compile(make_spec(body_markdown="a\n\nb\n\nFor {{ attributes.region }}."))
    with pytest.raises(TemplateError) as info:
        render(variant)
    assert (info.value.template, info.value.line) == ("body", 5)


def test_undefined_name_in_layout_template_reports_file_and_line(tmp_path: Path) -> None:
    """A typo in a template file is reported with the file name and its line."""
    templates = copy_templates(tmp_path)
    path = templates / "press_release.html"
    lines = path.read_text().splitlines()
    lines.insert(3, "<p>{{ headlin }}</p>")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TemplateError) as info:
        Renderer(templates).compile(make_spec())
    assert (info.value.template, info.value.line) == ("press_release.html", 4)


def test_syntax_error_reports_line(renderer: Renderer) -> None:
    """An unclosed expression is a TemplateError with the line where the parser stopped."""
    with pytest.raises(TemplateError, match="syntax error") as info:
        renderer.compile(make_spec(body_markdown="one\n\n{{ first_name"))
    assert (info.value.template, info.value.line) == ("body", 3)


def test_variant_template_must_extend_base(tmp_path: Path) -> None:
    """A variant template that skips base.html (and so the footer) is refused."""
    templates = copy_templates(tmp_path)
    (templates / "bare.html").write_text("<p>{{ body }}</p>\n")
    (templates / "bare.txt").write_text("{{ body }}\n")
    with pytest.raises(TemplateError, match=r"must extend base\.html"):
        Renderer(templates).compile(make_spec(template="bare"))


def test_missing_template_is_reported(renderer: Renderer) -> None:
    """A spec naming a template with no files fails at compile."""
    with pytest.raises(TemplateError, match="not found"):
        renderer.compile(make_spec(template="no_such_thing"))


# ------------------------------------------------------------- header injection


def test_recipient_name_with_crlf_is_refused(renderer: Renderer) -> None:
    """A first name carrying CR LF and a forged header raises HeaderInjectionError."""
    evil = Recipient("ann@example.org", "Ann\r\nBcc: victim@example.net", "Lee")
    with pytest.raises(HeaderInjectionError):
        render(renderer.compile(make_spec()), evil)


def test_subject_with_newline_after_rendering_is_refused(renderer: Renderer) -> None:
    """A subject that picks up a newline from a recipient attribute raises, naming Subject."""
    variant = renderer.compile(make_spec(subject="News for {{ attributes.beat }} desks"))
    evil = Recipient("ann@example.org", "Ann", attributes={"beat": "tech\nBcc: x@example.net"})
    with pytest.raises(HeaderInjectionError) as info:
        render(variant, evil)
    assert info.value.field == "Subject"


def test_sender_name_with_newline_is_refused_at_compile(renderer: Renderer) -> None:
    """A sender display name with LF cannot even be compiled."""
    sender = dataclasses.replace(SENDER, name="Acme\nBcc: x@example.net")
    with pytest.raises(HeaderInjectionError):
        renderer.compile(make_spec(sender=sender))


def test_check_header_value_rules() -> None:
    """TAB and non-ASCII pass; CR, LF, NUL, other controls and U+2028 are refused."""
    assert check_header_value("Subject", "a\tb café") == "a\tb café"
    for bad in ("a\rb", "a\nb", "a\x00b", "a\x1bb", "a\x7fb", "a\u2028b"):
        with pytest.raises(HeaderInjectionError):
            check_header_value("Subject", bad)


def test_non_https_unsubscribe_url_is_refused(renderer: Renderer) -> None:
    """List-Unsubscribe must carry an https URL (RFC 8058 one-click)."""
    with pytest.raises(InputError):
        render(renderer.compile(make_spec()), unsubscribe_url="http://insecure.example.com/u")


# ---------------------------------------------------------------- autoescaping


def test_first_name_markup_is_escaped_in_html(renderer: Renderer) -> None:
    """A first name of <script> appears escaped in the HTML part and verbatim in the text."""
    rcpt = Recipient("x@example.org", "<script>alert(1)</script>")
    text, html = parts(parse(render(renderer.compile(make_spec()), rcpt)))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Hello <script>alert(1)</script>, details" in text


def test_data_fields_are_not_evaluated_as_templates(renderer: Renderer) -> None:
    """Jinja syntax in a title or speaker bio is printed, never executed."""
    spec = make_spec(
        template="media_advisory",
        title="Maths: {{ 7 * 7 }}",
        speakers=(Speaker("Dr. Roe", "Chief", "{{ cycler.__init__ }}"),),
    )
    text, html = parts(parse(render(renderer.compile(spec))))
    assert "Maths: {{ 7 * 7 }}" in text and "Maths: {{ 7 * 7 }}" in html
    assert "{{ cycler.__init__ }}" in html


def test_markdown_raw_html_and_script_links_are_neutralized(renderer: Renderer) -> None:
    """Raw HTML in the body is escaped and javascript: links are dropped by the sanitizer."""
    spec = make_spec(body_markdown='<b onclick="x()">bold</b> [x](javascript:alert(1))')
    _, html = parts(parse(render(renderer.compile(spec))))
    assert "&lt;b onclick" in html
    assert 'href="javascript' not in html


# ----------------------------------------------------------- message structure


EXPECTED_HEADERS = [
    ("From", "Zoë Ångström PR <press@acme.example.com>"),
    ("Reply-To", "desk@acme.example.com"),
    ("To", "Ann Lee <ann@example.org>"),
    ("Subject", "Ann, embargoed briefing — «café» ✓"),
    ("Date", "Mon, 03 Mar 2025 09:30:00 +0000"),
    ("Message-ID", "<d1.42@acme.example.com>"),
    ("MIME-Version", "1.0"),
    ("Content-Type", None),
    ("List-Unsubscribe", f"<{UNSUB}>, <mailto:unsub+tok123@acme.example.com>"),
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ("List-Id", "Acme Advisories <acme.lists.example.com>"),
    ("Precedence", "bulk"),
    ("Auto-Submitted", "auto-generated"),
    ("Feedback-ID", "42:acme:mailer"),
]


def test_date_line_follows_the_second_and_the_zone_of_each_message(renderer: Renderer) -> None:
    """The Date line is reused within one second only: a later second, another zone, or
    another variant rendering meanwhile each give their own Date."""
    a, b = renderer.compile_here(make_spec()), renderer.compile_here(make_spec(subject="Other"))

    def date_of(variant: CompiledVariant, when: datetime) -> str:
        return str(parse(render(variant, date=when))["Date"])

    plus_two = timezone(timedelta(hours=2))
    assert date_of(a, DATE.replace(microsecond=900)) == "Mon, 03 Mar 2025 09:30:00 +0000"
    assert date_of(b, DATE + timedelta(days=1)) == "Tue, 04 Mar 2025 09:30:00 +0000"
    assert date_of(a, DATE + timedelta(seconds=1)) == "Mon, 03 Mar 2025 09:30:01 +0000"
    assert date_of(a, (DATE + timedelta(seconds=1)).astimezone(plus_two)) == "Mon, 03 Mar 2025 11:30:01 +0200"
    assert date_of(b, DATE) == "Mon, 03 Mar 2025 09:30:00 +0000"


def test_bytes_parse_back_with_exactly_the_expected_headers(renderer: Renderer) -> None:
    """The message parses with policy.default into exactly the required headers, in order."""
    spec = make_spec(subject="{{ first_name }}, embargoed briefing — «café» ✓")
    msg = parse(render(renderer.compile(spec)))
    assert [k for k, _ in msg.items()] == [k for k, _ in EXPECTED_HEADERS]
    for name, expected in EXPECTED_HEADERS:
        if expected is not None:
            assert str(msg[name]) == expected, name
    assert msg.get_content_type() == "multipart/alternative"
    assert not msg.defects
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    for part in msg.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert not part.defects


def test_both_parts_carry_unsubscribe_postal_address_and_disclosure(renderer: Renderer) -> None:
    """The text and HTML parts both hold the unsubscribe URL, postal address and disclosure."""
    text, html = parts(parse(render(renderer.compile(make_spec()))))
    for body in (text, html):
        assert UNSUB in body
        assert "1 Harbour Road" in body and "Springfield, ST 00001" in body
        assert DISCLOSURE in body
    assert f'href="{UNSUB}"' in html


def test_reply_to_and_disclosure_are_optional(renderer: Renderer) -> None:
    """Without reply_to and disclosure there is no Reply-To header and no disclosure text."""
    sender = dataclasses.replace(SENDER, reply_to=None, disclosure=None)
    msg = parse(render(renderer.compile(make_spec(sender=sender)), unsubscribe_mailto=None))
    assert "Reply-To" not in msg
    assert str(msg["List-Unsubscribe"]) == f"<{UNSUB}>"
    text, html = parts(msg)
    assert "Republic of Examplia" not in text + html


def test_html_has_inlined_css_and_no_external_resources(renderer: Renderer) -> None:
    """The style block is inlined into style attributes (only the @media rules stay in a <style>); no remote
    images or stylesheets."""
    _, html = parts(parse(render(renderer.compile(make_spec()))))
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(styles) == 1 and styles[0].strip().startswith("@media (prefers-color-scheme: dark)")
    assert 'style="' in html and "max-width: 640px" in html
    assert "<img" not in html and "<link" not in html


def test_crlf_everywhere_and_no_line_over_998(renderer: Renderer) -> None:
    """Every line ends in CRLF, no bare CR or LF, and no line exceeds 998 octets."""
    long_body = BODY + "\n\n" + ("word " * 600) + "\n\n" + "x" * 2000
    data = render(renderer.compile(make_spec(body_markdown=long_body)))
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert max(len(line) for line in lines) <= 998
    assert ("x" * 2000) in parts(parse(data))[0]


def test_long_subject_is_folded_and_decodes_intact(renderer: Renderer) -> None:
    """Long ASCII and non-ASCII subjects are folded to short lines and decode unchanged."""
    for subject in (
        "Embargoed briefing on the quarterly results " * 6,
        "Briefing sous embargo: résultats trimestriels, «équipe» ✓ " * 5,
    ):
        data = render(renderer.compile(make_spec(subject=subject)))
        head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
        raw = head[head.index("Subject:") :].split("\r\nDate:")[0]
        assert raw.count("\r\n") >= 2
        assert all(len(line) <= 78 for line in raw.split("\r\n"))
        assert str(parse(data)["Subject"]) == subject.strip()


def test_same_inputs_give_same_bytes(renderer: Renderer) -> None:
    """Rendering is deterministic: same variant and arguments give identical bytes."""
    first = render(renderer.compile(make_spec()))
    second = render(Renderer(TEMPLATES).compile(make_spec()))
    assert first == second
    assert render(renderer.compile(make_spec()), message_id="<d2@x.example>") != first


# --------------------------------------------------------------- fingerprints


def test_fingerprint_is_stable(renderer: Renderer) -> None:
    """The same spec and templates give the same hash, across Renderer instances."""
    value = fingerprint(make_spec(), renderer)
    assert len(value) == 64
    assert value == fingerprint(make_spec(), Renderer(TEMPLATES))


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Another subject"},
        {"body_markdown": BODY + "\nOne more line."},
        {"intro": None},
        {"template": "media_advisory"},
        {"sender": dataclasses.replace(SENDER, name="Other PR")},
        {"sender": dataclasses.replace(SENDER, disclosure="A different disclosure.")},
        {"sender": dataclasses.replace(SENDER, postal_address="2 Other Street")},
        {"speakers": (Speaker("A", "B", "C"),)},
        {"questions": ("Why?",)},
        {"list_id": "Other <other.lists.example.com>"},
        {"embargo": "March 4, 2025 09:00 UTC"},
    ],
)
def test_fingerprint_changes_with_any_spec_field(renderer: Renderer, changes: dict[str, object]) -> None:
    """Any change to the spec changes the fingerprint."""
    assert fingerprint(make_spec(**changes), renderer) != fingerprint(make_spec(), renderer)


def test_fingerprint_changes_with_template_source(renderer: Renderer, tmp_path: Path) -> None:
    """Editing base.html (which the variant extends) changes the fingerprint."""
    templates = copy_templates(tmp_path)
    base = templates / "base.html"
    base.write_text(base.read_text().replace("Unsubscribe</a>", "Opt out</a>"))
    assert fingerprint(make_spec(), Renderer(templates)) != fingerprint(make_spec(), renderer)


# ------------------------------------------------------------------- variants


def test_variants_render_differently(renderer: Renderer) -> None:
    """Two variants with different subject, intro and template give different messages."""
    a = renderer.compile(make_spec())
    b = renderer.compile(
        make_spec(
            template="media_advisory",
            subject="Interview offer for {{ outlet }}",
            intro="Your readers at {{ outlet }} will want this.",
        )
    )
    pa = a.render_parts(ANN, to_addr=ANN.email, unsubscribe_url=UNSUB)
    pb = b.render_parts(ANN, to_addr=ANN.email, unsubscribe_url=UNSUB)
    assert pa.subject == "Ann, embargoed briefing"
    assert pb.subject == "Interview offer for Daily Planet"
    assert "Dear Ann," in pa.text and "Your readers at Daily Planet" in pb.text
    assert "FOR IMMEDIATE RELEASE" in pa.text and "MEDIA ADVISORY" in pb.text
    assert render(a) != render(b)


def test_missing_recipient_fields_fall_back_to_defaults(renderer: Renderer) -> None:
    """A recipient with only an address gets the defaults written in the templates."""
    bare = Recipient("someone@example.org")
    msg = parse(render(renderer.compile(make_spec()), bare))
    assert str(msg["To"]) == "someone@example.org"
    assert str(msg["Subject"]) == "Hello, embargoed briefing"
    text, html = parts(msg)
    assert "Dear colleague," in text and "Dear colleague," in html
    assert "results of the press" not in text
    assert "briefing on the press results" in text
    assert "Hello there, details" in text


def test_missing_field_without_default_prints_empty(renderer: Renderer) -> None:
    """A known but empty field prints as empty text rather than failing."""
    variant = renderer.compile(make_spec(subject="[{{ outlet }}] briefing"))
    parts_ = variant.render_parts(Recipient("a@example.org"), to_addr="a@example.org", unsubscribe_url=UNSUB)
    assert parts_.subject == "[] briefing"


def test_media_advisory_lists_speakers_and_questions(renderer: Renderer) -> None:
    """Speakers (name, title, bio), questions and booking contact appear in both parts."""
    spec = make_spec(
        template="media_advisory",
        speakers=(
            Speaker("Dr. Jane Roe", "Chief Scientist", "Jane leads the climate programme."),
            Speaker("Sam Poe", "CEO", "Sam founded Acme in 2001."),
        ),
        questions=("What changed this year?", "What comes next?"),
    )
    text, html = parts(parse(render(renderer.compile(spec))))
    for body in (text, html):
        assert "Available for interview".lower() in body.lower()
        assert "Dr. Jane Roe, Chief Scientist" in body
        assert "Jane leads the climate programme." in body
        assert "Sam founded Acme in 2001." in body
        assert "What changed this year?" in body and "What comes next?" in body
        assert "To book an interview: Pat Doe, +1 555 0100" in body
    assert "1. What changed this year?" in text
    assert "<ol" in html


def test_press_release_has_dateline_about_and_end_mark(renderer: Renderer) -> None:
    """The press release shows headline, dateline, About boilerplate, contact and ###."""
    text, html = parts(parse(render(renderer.compile(make_spec(embargo="March 4, 09:00 UTC")))))
    for body in (text, html):
        assert "Acme announces results" in body
        assert "SPRINGFIELD, March 3, 2025" in body
        assert "Acme makes examples." in body
        assert "Media contact: Pat Doe" in body
        assert "###" in body
    assert "EMBARGOED UNTIL March 4, 09:00 UTC" in text
    assert "<strong>About Acme</strong>" in html
    assert 'href="https://acme.example.com/r/42"' in html
    assert "the site <https://acme.example.com/r/42>" in text


def test_conditional_block_in_markdown_body(renderer: Renderer) -> None:
    """An {% if %} block on its own lines in the body shows only for matching recipients."""
    body = (
        "Intro.\n\n{% if attributes.beat | default('') == 'science' %}\nA note for science desks.\n{% endif %}\n\nEnd."
    )
    variant = renderer.compile(make_spec(body_markdown=body))
    science = variant.render_parts(ANN, to_addr=ANN.email, unsubscribe_url=UNSUB)
    other = variant.render_parts(Recipient("b@example.org"), to_addr="b@example.org", unsubscribe_url=UNSUB)
    assert "A note for science desks." in science.html and "A note for science desks." in science.text
    assert "science desks" not in other.html and "science desks" not in other.text
    assert "<p></p>" not in science.html + other.html


def test_render_parts_match_the_message(renderer: Renderer) -> None:
    """The preview parts are exactly what the message carries, non-ASCII To name included."""
    rcpt = Recipient("zoe@example.org", "Zoë", "Ørsted", "Le Monde")
    variant = renderer.compile(make_spec())
    preview = variant.render_parts(rcpt, to_addr=rcpt.email, unsubscribe_url=UNSUB)
    msg = parse(render(variant, rcpt))
    assert str(msg["To"]) == "Zoë Ørsted <zoe@example.org>"
    assert str(msg["Subject"]) == preview.subject
    text, html = (part.replace("\r\n", "\n") for part in parts(msg))
    assert (text, html) == (preview.text, preview.html)
