"""The text part a journalist reads: Markdown rendered to clean text (no markup left,
lists as - and 1., links as text then URL once), wrapped at 78 columns, the dateline
leading the first paragraph, the signature separator before the footer."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

import pytest
from markdown_it import MarkdownIt

from mailer.message import Renderer
from mailer.message.plaintext import WIDTH, finish_text, markdown_to_text
from tests.support.constants import TEMPLATES
from tests.support.render import ANN, DATE, make_spec

MD = MarkdownIt("commonmark", {"html": False})

BODY = """\
**What:** A briefing on the *harbour* results, with `numbers`, for {{ outlet | default("the press") }} and every \
other outlet that covers shipping, ports, insurance, maritime law and the regional economy of the coast.

**Speakers:**

- Dr. Ada Example, director of the institute, who has studied harbours for twenty years and can speak to all of it
- Ben Sample
  - nested detail

1. First point
2. Second point

Read [the full report](https://acme.example.com/r/42), or <https://acme.example.com/short>, \
or [https://acme.example.com/same](https://acme.example.com/same).

## Background

> A quoted line from the report.
"""


def text_part(**changes: object) -> str:
    variant = Renderer(TEMPLATES).compile(make_spec(**changes))
    raw = variant.render(
        ANN,
        to_addr=ANN.email,
        message_id="<t.1@acme.example.com>",
        unsubscribe_url="https://news.acme.example.com/u/tok123",
        unsubscribe_mailto=None,
        date=DATE,
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


def test_markdown_becomes_clean_text() -> None:
    """Emphasis and code marks go, lists are - and 1., a link is its text then its URL once, headings lose their #."""
    text = markdown_to_text(MD, BODY.replace('{{ outlet | default("the press") }}', "Planet"))
    assert text.startswith("What: A briefing on the harbour results, with numbers, for Planet")
    assert "\n- Dr. Ada Example" in text and "\n- Ben Sample\n  - nested detail\n" in text
    assert "\n1. First point\n2. Second point" in text
    assert "the full report <https://acme.example.com/r/42>" in text
    assert text.count("https://acme.example.com/short") == 1
    assert text.count("https://acme.example.com/same") == 1
    assert "\nBackground\n" in text and "\n    A quoted line" in text
    for mark in ("**", "`", "](", "## ", "> "):
        assert mark not in text, mark


def test_text_part_lines_fit_78_columns_and_carry_no_markup() -> None:
    """Every line of the sent text part is at most 78 characters and free of Markdown markup."""
    text = text_part(body_markdown=BODY)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, [line for line in lines if len(line) > WIDTH]
    assert not re.search(r"\*\*|\]\(|^#+ |`", text, re.M)
    item = next(i for i, line in enumerate(lines) if line.startswith("- Dr. Ada Example"))
    assert lines[item + 1].startswith("  ") and lines[item + 1][2] != " "  # hanging indent under the text
    assert "What: A briefing on the harbour results, with numbers, for Daily Planet" in " ".join(text.split())


def test_dateline_leads_the_first_paragraph_and_signature_separator_precedes_the_footer() -> None:
    """The dateline opens the body's first paragraph; "-- " (with its space) stands alone before the footer."""
    text = text_part(body_markdown=BODY)
    assert "SPRINGFIELD, March 3, 2025 — What: A briefing" in text
    lines = text.splitlines()
    separator = lines.index("-- ")
    assert lines[separator + 1].startswith("This message was sent to ann@example.org")
    assert "--\n" not in text.replace("-- \n", "")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("x" * 100 + "\n", "x" * 100 + "\n"),  # a word never breaks
        ("- " + "word " * 30 + "\n", "- " + ("word " * 15).strip() + "\n  " + ("word " * 15).strip() + "\n"),
        ("Title\n=====================\n", "Title\n=====\n"),
        ("a  \n\n\n\nb\n-- \nc", "a\n\nb\n-- \nc\n"),
    ],
)
def test_finish_text_rules(given: str, expected: str) -> None:
    """Wrapping keeps words whole and hangs list items; an underline fits its heading; blank runs collapse; "-- " stays."""
    assert finish_text(given) == expected
