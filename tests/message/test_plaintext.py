"""The text part a journalist reads: Markdown rendered to clean text (no markup left,
lists as - and 1., links as text then URL once), wrapped at 78 columns, the dateline
leading the first paragraph, the signature separator before the footer."""

from __future__ import annotations

import email
import email.policy
import re
import textwrap
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from mailer.message import Renderer, plaintext
from mailer.message.plaintext import WIDTH, finish_text, first_sentence, markdown_to_text
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


def _first_sentence_whole(text: str) -> str:
    """first_sentence as it was before issue 20 (the whole 4,000 characters at once)."""
    spelled = re.compile(r"[ \t]*<[a-zA-Z][a-zA-Z0-9+.\-]*:[^<>\s]*>")
    flat = " ".join(spelled.sub("", text[:4000]).split())
    end = re.compile(r"[.!?](?=\s|$)").search(flat, 20)
    sentence = flat[: end.end()] if end else flat
    if len(sentence) <= 140:
        return sentence
    return sentence[:139].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"


_SENTENCE_BITS = st.lists(
    st.sampled_from(
        [
            "word",
            "Dr.",
            "a.b",
            "!",
            "?",
            ".",
            " ",
            "  ",
            "\n",
            "\t",
            "\n\n",
            " <https://x.example/a>",
            "<mailto:a@b>",
            "<https://",
            "x>",
            "<",
            ">",
            ",",
            ";",
            "\u2026",
            "\xa0",
            "é",
            "long" * 20,
        ]
    ),
    max_size=400,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_SENTENCE_BITS)
def test_first_sentence_reads_a_prefix_but_gives_what_the_whole_text_gives(text: str) -> None:
    """first_sentence on arbitrary text (URLs, dots, whitespace runs, cuts anywhere) equals
    the whole-text computation it replaced."""
    assert first_sentence(text) == _first_sentence_whole(text)


@pytest.mark.parametrize("pad", [0, 1, 5, 130, 390, 398, 399, 400, 401, 1590, 1601, 3990, 4001])
def test_first_sentence_at_the_prefix_boundaries(pad: int) -> None:
    """A URL, a sentence end or a long sentence straddling the prefixes first_sentence tries."""
    for tail in ("Dr. <https://x.example/y>. And more.", " <https://x.example/y>Next. b", "end. x", "a" * 200 + ". b"):
        text = "w " * (pad // 2) + ("x" if pad % 2 else "") + tail
        assert first_sentence(text) == _first_sentence_whole(text)


def test_first_sentence_with_whitespace_runs_across_the_first_prefix() -> None:
    """Runs of blank space put a short flat text, a sentence end or a URL right at the first
    prefix's cut (flat lengths around the preview's 140): still the whole text's answer."""
    tails = ("Dr. <https://x.example/y>Roe. And more.", "end", "end. x", "q <https://x.example/y>. b", "b " * 40)
    for words in range(60, 75):
        for gap in range(180, 400, 7):
            for tail in tails:
                for space in (" ", "\n"):
                    for lead in ("", "x"):
                        text = lead + "a " * words + space * gap + tail
                        assert first_sentence(text) == _first_sentence_whole(text), (words, gap, tail)
                    text = "Hi Dr. " + space * (gap + words) + tail
                    assert first_sentence(text) == _first_sentence_whole(text), (words, gap, tail)


def _textwrap_wrap(line: str) -> tuple[str, ...]:
    """The wrap as textwrap gives it (what plaintext._wrap_now did before issue 20)."""
    m = re.match(r"(\s*)((?:[-*\u2022]|\d{1,3}[.)])\s+)?", line)
    assert m is not None
    lead, mark = m.group(1), m.group(2) or ""
    wrapped = textwrap.wrap(
        line[len(lead) :],
        width=WIDTH,
        initial_indent=lead,
        subsequent_indent=lead + " " * len(mark),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return tuple(wrapped) or (line,)


_LINE_BITS = st.lists(
    st.one_of(
        st.sampled_from([" ", "  ", "\t", "\xa0", "-", "- ", "1. ", "12) ", "\u2022 ", "word", "a-b", "."]),
        st.text(alphabet="abcdéf\u2014.,-", min_size=1, max_size=90),
    ),
    max_size=60,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(_LINE_BITS, st.sampled_from(["", " ", "    ", "  - ", "1. ", "\t", " " * 80]))
def test_fast_wrap_is_textwrap(body: str, lead: str) -> None:
    """The wrap without textwrap (single spaces, runs of spaces, long words, list markers,
    indents as long as a line) gives textwrap's lines; other whitespace goes to textwrap."""
    line = lead + body
    assert plaintext._wrap_now(line) == _textwrap_wrap(line)


def test_fast_wrap_on_word_lengths_around_the_width() -> None:
    """Words that just fit, just do not, or are longer than a line, after any indent."""
    for lead in ("", "- ", "    ", "  10. "):
        for first in range(1, 85, 3):
            for second in range(1, 85, 3):
                line = lead + "a" * first + " " + "b" * second + " " + "c" * (79 - first)
                assert plaintext._wrap_now(line) == _textwrap_wrap(line), (lead, first, second)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["D.C. (x)", "x D.C. (x)", " \u2014", " -", " --", "\u2013", " ", "\t", "\n", "\n\n", "a", "."])
    ).map("".join),
)
def test_dateline_step_is_the_regex_it_was(text: str) -> None:
    """The dateline joined to its paragraph from its first line on, as the whole-text
    regex did (the dateline also mid-line, repeated, with regex characters, no dash)."""
    dateline = "D.C. (x)"
    joined = re.sub(rf"(?m)^({re.escape(dateline)} [\u2014\u2013-]+)[ \t]*\n(?=\S)", r"\1 ", text, count=1)
    assert finish_text(text, dateline=dateline) == finish_text(joined)
