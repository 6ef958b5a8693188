"""The faster render path (issue 20) gives exactly the bytes main gave before it.

Approvals bind to the rendered bytes (``RENDER_VERSION`` did not change), so every case
here is compared with digests of the bytes main rendered before the change
(``render_golden.json``, made by running this file as a script against a checkout of main:
``PYTHONPATH=/path/to/main python tests/message/test_render_equivalence.py > ...``), and
the new parts with the old ones kept callable: whole-text quoted-printable (``qp.qp``),
textwrap without the cache (``_wrap_now``), and Jinja's own sandboxed ``getattr``.

Self-contained on purpose (no ``tests.support`` imports): the same file runs against main.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailer.domain.errors import MailerError, TemplateError
from mailer.message import (
    Booking,
    Recipient,
    RelatedLink,
    Renderer,
    RenderJob,
    Sender,
    Speaker,
    SpeakerGroup,
    VariantSpec,
    plaintext,
    sandbox,
)
from mailer.message.sandbox import Sandbox, make_sandbox
from mailer.message.spec import Attachment, KitAsset

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
DEMO = REPO / "mailer" / "demo" / "data"
GOLDEN = Path(__file__).with_name("render_golden.json")
DATE = datetime(2026, 11, 30, 14, 5, 9, tzinfo=UTC)
PER_CASE = 60

SENDER = Sender(
    name="Acme Institute Press Office",
    address="press@acme.example.com",
    reply_to="desk@acme.example.com",
    postal_address="1 Harbour Road\nSpringfield, ST 00001",
    disclosure="This material is distributed by Acme PR on behalf of the Acme Institute.",
)
ODD_SENDER = Sender(
    name="Ünïcode = Press . Office",
    address="press@acme.example.com",
    reply_to=None,
    postal_address=".\n=3D Street 1  \nÅrhus   \n" + "x" * 120,
    disclosure="Paid for by Acme = Acme.   \n. a dot line\n" + "long " * 40,
)

# Author input that is hard on quoted-printable and on the text wrapper: dots at line
# starts, '=' signs, trailing spaces and tabs, non-ASCII, CRLF, lines around 76 octets,
# words longer than a line, and per-recipient values inside such lines.
HOSTILE_BODY = "\r\n".join(
    [
        "Hello {{ first_name | default('there') }}, from {{ outlet | default('nowhere') }}.",
        "",
        ".",
        "",
        ". a paragraph that starts with a dot",
        "",
        "{{ first_name }}.",
        "",
        "a = b, c == d, =?utf-8?q?x?= and =3D and a trailing equals =",
        "",
        "trailing spaces   ",
        "",
        "\tcode block line = 1   ",
        "\t.",
        "",
        "x" * 75,
        "",
        "y" * 76 + " " + "z" * 3,
        "",
        "word " * 60 + "{{ last_name }} " + "end.",
        "",
        "Grüße, “quotes”, 名前, emoji 😀 and a non-breaking\u00a0space " * 3,
        "",
        "{{ attributes.note | default('') }}",
        "",
        "{{ attributes.long | default('no long') }}",
        "",
        "- item . with = sign\n- {{ outlet | upper }}\n- " + "é" * 100,
        "",
        "> quoted . line with = and trailing space ",
        "",
        "[a link](https://acme.example.com/a=b?c=d.) and https://acme.example.com/" + "p" * 90,
        "",
        "From the desk of {{ first_name | default('.') }}",
        "",
        "Last line without a newline .",
    ]
)

FIRST = ["Ann", "", "Zoë", ".", "=", "Ann ", "  ", "A" * 300, "名前", "O'Brien & <b>", "=?utf-8?q?x?=", "Jean\tLuc"]
LAST = ["Writer", "", "Ünal", ". ", "=3D", "X" * 200, "van der Berg"]
OUTLETS = ["The Examplia Times", "", ".", "x" * 500, "Ünïcödé Daily", "A=B", "trailing   ", "Radio. Dot"]
ZONES = ["", "Europe/Berlin", "Asia/Tokyo", "America/New_York"]


def recipient(i: int) -> Recipient:
    """The i-th fictional recipient, many of them awkward."""
    attributes: dict[str, str] = {}
    if i % 3 == 0:
        attributes["note"] = f"line one\r\n.\r\nline {i} = three   \r\n" + "n" * (70 + i % 10)
    if i % 4 == 1:
        attributes["long"] = "word " * (i % 50 + 10) + "." * (i % 5)
    if i % 5 == 2:
        attributes["metric"] = f"{i} = {i * 3}%"
    local = f"journalist{i}" if i % 7 else "j" * 60 + str(i % 10)
    return Recipient(
        email=f"{local}@example.org",
        first_name=FIRST[i % len(FIRST)],
        last_name=LAST[i % len(LAST)],
        outlet=OUTLETS[i % len(OUTLETS)],
        attributes=attributes,
        timezone=ZONES[i % len(ZONES)],
    )


def _demo_specs() -> list[VariantSpec]:
    """The demo release (``mailer/demo/data``), both of its variants."""
    text = (DEMO / "release.md").read_text("utf-8")
    _, front, body = text.split("+++\n", 2)
    meta = tomllib.loads(front)
    client = tomllib.loads((DEMO / "client.toml").read_text("utf-8"))
    sender = Sender(
        name=client["from_name"],
        address=client["from_address"],
        reply_to=client.get("reply_to"),
        postal_address=client["postal_address"],
        disclosure=client.get("disclosure"),
    )
    common: dict[str, Any] = {
        "release_key": "7",
        "template": meta["template"],
        "title": meta["title"],
        "dateline": meta["dateline"],
        "body_markdown": body,
        "sender": sender,
        "list_id": "Valdoria Mission <valdoria-mission.lists.example.org>",
        "feedback_id": "7:valdoria-mission:mailer",
        "speakers": tuple(Speaker(s["name"], s["title"], s["bio"]) for s in meta["speakers"]),
        "questions": tuple(meta["questions"]),
        "booking_contact": meta["booking_contact"],
        "about": meta["about"],
        "embargo_at": "2026-12-01T11:00:00+00:00",
        "embargo_zone": "America/New_York",
        "embargo": "December 1, 2026, 6:00 a.m. EST",
    }
    variant = meta["variants"]["broadcast-bookers"]
    return [
        VariantSpec(subject=meta["subject"], intro=meta["intro"], **common),
        VariantSpec(subject=variant["subject"], intro=variant["intro"], **common),
    ]


def specs() -> dict[str, VariantSpec]:
    """Every case: name → spec."""
    bench_body = (
        "Hello {{ first_name | default('there') }},\n\n**What:** a briefing.\n\n"
        + "Researchers reported a {{ attributes.metric | default('12 percent') }} change that "
        "{{ outlet | default('your outlet') }} readers will recognise from last year's floods. "
        * 3
        + "\n\n## Key findings\n\n- one\n- two\n\n> \u201cThe clearest picture yet,\u201d said Dr. Jane Roe."
    )
    common: dict[str, Any] = {
        "release_key": "42",
        "title": "Acme Institute publishes 2025 coastal monitoring results",
        "dateline": "SPRINGFIELD, March 3, 2025",
        "sender": SENDER,
        "list_id": "Acme Advisories <acme.lists.example.com>",
        "feedback_id": "42:acme:mailer",
        "booking_contact": "Pat Doe, pat@acme.example.com, +1 555 0100",
        "about": "**About the Acme Institute**: an independent research body founded in 1951.",
    }
    speakers = (
        Speaker("Dr. Jane Roe", "Chief Scientist", "Jane has led the programme since 2012.\n\n. Second = para  "),
        Speaker("Sam Poe", "", "line one\nline two " + "b" * 90),
    )
    asset = KitAsset(1, "image", "harbour.png", "image/png", 123_456, "0" * 64, 1200, 800, "The = harbour .", "Alt")
    document = KitAsset(2, "document", "fact sheet.pdf", "application/pdf", 2_345_678, "1" * 64, attached=True)
    out = {
        "press_release": VariantSpec(
            template="press_release",
            subject="{{ first_name | default('News') }}: Acme coastal results — embargoed",
            intro="Dear {{ first_name | default('colleague') }}, an advance copy for {{ outlet }}.",
            body_markdown=bench_body,
            **common,
        ),
        "media_advisory": VariantSpec(
            template="media_advisory",
            subject="Interview offer for {{ outlet | default('you') }}",
            intro="Our scientists are available to {{ outlet | default('your newsroom') }} this week.",
            body_markdown=bench_body,
            speakers=speakers,
            questions=("What changed this season?", ". What = now?  "),
            **common,
        ),
        "hostile_press_release": VariantSpec(
            release_key="43",
            template="press_release",
            subject="=?utf-8?q?{{ first_name }}?= . = Grüße {{ outlet | default('') }}",
            title="A title = with . dots and Ünïcödé " + "t" * 80,
            dateline="BERLIN, 1. Dezember 2026",
            intro="{{ first_name | default('.') }}\n\n. = intro   ",
            body_markdown=HOSTILE_BODY,
            sender=ODD_SENDER,
            list_id="Odd = List <odd.lists.example.com>",
            feedback_id="43:odd:mailer",
            about="About . us = **them**  \n. next",
            preheader=". pre = header ",
            speaker_groups=(SpeakerGroup("Also = here", speakers),),
            questions_heading="Questions . =",
            related=(RelatedLink("A = link .", "https://acme.example.com/r?a=b"),),
            booking=Booking(name="Pat = Doe", email="pat@acme.example.com", phone="+1 (555) 0100", note=". note "),
            disclosure_placement="block",
            assets=(asset, document),
            attachments=(Attachment("fact.txt", "text/plain", base64.b64encode(b"fact . = sheet\n" * 40).decode()),),
            site_url="https://news.acme.example.com",
            newsroom_path="/newsroom/acme/43",
        ),
        "hostile_media_advisory": VariantSpec(
            release_key="44",
            template="media_advisory",
            subject="{{ title }} for {{ first_name | default('you') }}",
            title="Advisory",
            dateline=None,
            intro=None,
            body_markdown=HOSTILE_BODY.replace("\r\n", "\n"),
            sender=SENDER,
            list_id="Acme Advisories <acme.lists.example.com>",
            feedback_id="44:acme:mailer",
            speakers=speakers,
            questions=tuple(f"Question {n} . = " + "q" * n * 9 for n in range(1, 8)),
            embargo_at="2026-12-02T08:00:00+00:00",
            embargo_zone="Europe/Berlin",
            embargo="2 December 2026, 09:00 CET",
        ),
    }
    for n, spec in enumerate(_demo_specs()):
        out[f"demo_{n}"] = spec
    return out


def jobs(case: str) -> Iterator[RenderJob]:
    """PER_CASE jobs of one case, the message ids unique, some with parts, replies and kit tokens."""
    for i in range(PER_CASE):
        r = recipient(i)
        yield RenderJob(
            r,
            r.email,
            f"https://news.acme.example.com/u/{case}.{i:06d}",
            f"<{case}.{i}@acme.example.com>",
            f"mailto:unsub+{i:06d}@acme.example.com" if i % 2 else None,
            DATE,
            parts=i % 5 == 0,
            reply_to=f"reply+{i}@acme.example.com" if i % 6 == 1 else None,
            in_reply_to=f"<parent.{i}@acme.example.com>" if i % 8 == 3 else None,
            kit_token=f"kit{i}" if i % 3 else None,
            release_token="rel" if i % 2 else None,
        )


def digests() -> dict[str, str]:
    """Case → SHA-256 over every message's bytes (and parts, or the error) in order."""
    renderer = Renderer(TEMPLATES)
    out: dict[str, str] = {}
    for case, spec in specs().items():
        h = hashlib.sha256()
        variant = renderer.compile(spec)
        for job in jobs(case):
            try:
                rendered = variant.run(job)
            except MailerError as exc:
                h.update(f"\0error {type(exc).__name__}: {exc}\0".encode())
                continue
            h.update(rendered.data or b"")
            if rendered.parts is not None:
                p = rendered.parts
                h.update("\0".join(("", p.subject, p.text, p.html, "")).encode("utf-8"))
        out[case] = h.hexdigest()
    return out


# ------------------------------------------------------------------------------ tests


def test_every_case_renders_the_bytes_main_rendered() -> None:
    """Templates, the demo release and hostile author and recipient input: the digests of main before the change."""
    assert digests() == json.loads(GOLDEN.read_text("utf-8"))


def test_the_same_bytes_when_the_caches_keep_emptying(monkeypatch: pytest.MonkeyPatch) -> None:
    """Line caches of a few characters (emptied on nearly every line): still main's digests."""
    from mailer.message import qp  # not in main: imported here so that this file still runs there

    monkeypatch.setattr(qp, "QP_CACHE_CHARS", 100)
    monkeypatch.setattr(plaintext, "_WRAPPED_MAX_CHARS", 100)
    assert digests() == json.loads(GOLDEN.read_text("utf-8"))


def test_the_same_bytes_through_the_full_sandbox_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja's own sandboxed getattr instead of the shortcuts: main's digests (so the shortcuts change nothing)."""
    monkeypatch.setattr(Sandbox, "getattr", ImmutableSandboxedEnvironment.getattr)
    assert digests() == json.loads(GOLDEN.read_text("utf-8"))


_QP_ALPHABET = st.sampled_from(
    ["a", "Z", " ", "\t", ".", "=", "\n", "\r", "\r\n", "é", "€", "😀", "\x00", "\x7f", "_", "-"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_QP_ALPHABET, st.text(max_size=90)), max_size=80), st.integers(0, 3))
def test_line_by_line_quoted_printable_is_the_whole_text_encoding(pieces: list[str], repeat: int) -> None:
    """Any text (dots, '=', spaces and tabs before line ends and at the end, CR, long lines): QPLines gives qp.qp's bytes, cached or not."""
    from mailer.message import qp

    text = "".join(pieces) + ("x" * 70 + " ." * repeat)
    cache = qp.QPLines()
    for _ in range(2):  # the second time from the cache
        assert cache.encode(text) == qp.qp(text)
        assert cache.encode(text[:-1]) == qp.qp(text[:-1])


@pytest.mark.parametrize("width", [74, 75, 76, 77, 78])
def test_lines_around_the_soft_break_column(width: int) -> None:
    """Lines of 74-78 octets ending in a dot, a space, a tab, '=' or a multibyte letter: the same bytes as qp.qp."""
    from mailer.message import qp

    cache = qp.QPLines()
    for end in (".", " ", "\t", "=", "é", "a"):
        for line in ("a" * (width - 1) + end, "." + "b" * (width - 2) + end, end * width):
            for text in (line, line + "\n", line + "\n" + line, "\n" + line + "\n\n"):
                assert cache.encode(text) == qp.qp(text), (width, end, text)


def test_wrapping_from_the_cache_is_wrapping() -> None:
    """A remembered wrap is the wrap (long lines, list items, indents)."""
    for line in ("word " * 40, "- item " + "x " * 60, "    indented " * 12, "1. numbered " * 10, "z" * 200):
        assert plaintext._wrap(line) == plaintext._wrap_now(line) == plaintext._wrap(line)


def test_the_shortcuts_answer_what_the_sandbox_answers() -> None:
    """Every shortcut field of every value type, and dict keys and methods: what Jinja's sandboxed getattr gives."""
    env = make_sandbox(DictLoader({}))
    full = ImmutableSandboxedEnvironment.getattr
    spec = specs()["hostile_press_release"]
    objects: list[Any] = [spec.sender, ODD_SENDER, spec.booking, *spec.related, *spec.speaker_groups]
    objects += [s for group in spec.speaker_groups for s in group.speakers]
    for obj in objects:
        for name in sandbox._PLAIN_FIELDS[type(obj)] | {"missing", "__class__", "_x", "__init__"}:
            assert _same(env.getattr(obj, name), full(env, obj, name)), (obj, name)
    mapping = {"note": "x", "items": "shadowed", "pop": 1, "_hidden": 2, "__class__": 3}
    for name in ("note", "items", "pop", "clear", "keys", "_hidden", "__class__", "missing", "get", "update"):
        assert _same(env.getattr(mapping, name), full(env, mapping, name)), name


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Undefined) or isinstance(b, Undefined):
        return type(a) is type(b) and a._undefined_hint == b._undefined_hint and a._undefined_name == b._undefined_name
    return bool(a == b)


@pytest.mark.parametrize(
    "body",
    [
        "{{ attributes.pop('beat') }}",
        "{{ attributes.clear() }}",
        "{{ attributes.update({'a': 1}) }}",
        "{% set f = attributes.items %}{{ f.__self__ }}",
        "{{ '{0.__class__}'.format(sender) }}",
        "{{ (attributes|first).__class__ }}",
    ],
)
def test_author_templates_still_cannot_reach_what_the_sandbox_forbids(body: str) -> None:
    """Mutating a dict, reaching dunders through values, str.format: refused as before (at compile or render time)."""
    renderer = Renderer(TEMPLATES)
    spec = dataclasses.replace(specs()["press_release"], body_markdown=body)
    job = next(jobs("press_release"))
    with pytest.raises(TemplateError):
        renderer.compile(spec).run(dataclasses.replace(job, recipient=recipient(3)))


if __name__ == "__main__":
    json.dump(digests(), sys.stdout, indent=1, sort_keys=True)
    print()
