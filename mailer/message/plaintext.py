"""The text/plain part a journalist reads: Markdown rendered to clean text, wrapped.

Two steps, because per-recipient values change line lengths:

* :func:`markdown_to_text` (once per variant, on the body and intro with their Jinja
  swapped for opaque tokens): no markup characters are left. Emphasis and code marks
  go; a link becomes its text followed by its URL once (``text <https://...>``; an
  autolink, or a link whose text is its URL, is the URL alone); lists become ``- item``
  and ``1. item`` (nested ones indented by the marker's width); headings and paragraphs
  are blocks separated by a blank line; a quote or code block is indented by four
  spaces; an image is its alt text, or, when the caller says how images are shown
  (:mod:`mailer.message.images`), a ``[Image: alt] <https://...>`` line; a rule is a line
  of ten dashes.
* :func:`finish_text` (per message, after Jinja): every line is wrapped at 78 columns
  (RFC 5322 2.1.1's SHOULD, and what plain-text readers expect), at spaces only, never
  inside a word or URL; a wrapped list item or indented line continues under its text
  (hanging indent). A dateline standing alone on its line (``DATELINE —``) leads the
  paragraph after it. A line of only ``=`` or ``-`` under a heading (an underline) is
  cut to the heading's width. Trailing spaces go, except in the signature separator
  ``-- `` (RFC 3676 4.3), and runs of blank lines become one.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Callable, Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mailer.message.images import KitImages, alt_text, has_images

__all__ = ["WIDTH", "finish_text", "first_sentence", "markdown_to_text"]

#: The longest line of the text part (RFC 5322 2.1.1: SHOULD be no more than 78).
WIDTH = 78

_SIGNATURE = "-- "
_MARKER = re.compile(r"(\s*)((?:[-*\u2022]|\d{1,3}[.)])\s+)?")
_UNDERLINE = re.compile(r"[=\-]{3,}")


def _inline(children: Sequence[Token] | None, image_line: Callable[[Token], str | None] | None = None) -> str:
    out: list[str] = []
    href: list[str] = []
    start: list[int] = []
    for tok in children or ():
        kind = tok.type
        if kind in ("text", "code_inline"):
            out.append(tok.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "image":
            line = image_line(tok) if image_line is not None else None
            out.append(tok.content if line is None else line)
        elif kind == "link_open":
            href.append(str(tok.attrGet("href") or ""))
            start.append(len(out))
        elif kind == "link_close" and href:
            url, begin = href.pop(), start.pop()
            text = "".join(out[begin:]).strip()
            if url and text not in (url, url.removeprefix("mailto:")):
                out.append(f" <{url}>")
    return "".join(out).strip()


def markdown_to_text(
    markdown: MarkdownIt, source: str, *, images: KitImages | None = None, template_mark: str | None = None
) -> str:
    """``source`` (Markdown) as plain text; see the module docstring. ``images``: the
    images that are shown (None: every image is its alt text); ``template_mark``: what
    the source's Jinja constructs were replaced by."""
    image_line: Callable[[Token], str | None] | None = None
    if images is not None and has_images(source):
        kit = images

        def line_of(tok: Token) -> str | None:
            shown = kit.show(str(tok.attrGet("src") or ""), alt_text(markdown, tok), template_mark=template_mark)
            return shown.text() if shown is not None else None

        image_line = line_of

    blocks: list[str] = []  # text blocks, joined by blank lines
    prefixes: list[str] = []  # indentation of quotes and list item bodies
    numbers: list[int | None] = []  # per open list: the next number (None: bullets)
    marker: str | None = None  # the marker the item's first line starts with
    joinable = False  # the next tight-list paragraph continues the block before it

    tokens = markdown.parse(source)
    for i, tok in enumerate(tokens):
        kind = tok.type
        if kind == "inline" and i and tokens[i - 1].type in ("paragraph_open", "heading_open"):
            hidden = tokens[i - 1].hidden
            pad = "".join(prefixes)
            first = ("".join(prefixes[:-1]) + marker) if marker is not None else pad
            marker = None
            lines = _inline(tok.children, image_line).split("\n")
            text = "\n".join([first + lines[0], *(pad + line for line in lines[1:])])
            if hidden and joinable and blocks:
                blocks[-1] += "\n" + text  # tight list: items on consecutive lines
            else:
                blocks.append(text)
            joinable = hidden
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = tok.attrGet("start")
            numbers.append((int(start) if start is not None else 1) if kind == "ordered_list_open" else None)
            if len(numbers) == 1:
                joinable = False
        elif kind in ("bullet_list_close", "ordered_list_close"):
            numbers.pop()
            if not numbers:
                joinable = False
        elif kind == "list_item_open":
            number = numbers[-1]
            if number is None:
                marker = "- "
            else:
                marker = f"{number}. "
                numbers[-1] = number + 1
            prefixes.append(" " * len(marker))
        elif kind == "list_item_close":
            prefixes.pop()
            marker = None
        elif kind == "blockquote_open":
            prefixes.append("    ")
            joinable = False
        elif kind == "blockquote_close":
            prefixes.pop()
        elif kind in ("fence", "code_block"):
            pad = "".join(prefixes) + "    "
            blocks.append("\n".join(pad + line for line in tok.content.rstrip("\n").split("\n")))
            joinable = False
        elif kind == "hr":
            blocks.append("".join(prefixes) + "-" * 10)
            joinable = False
    return "\n\n".join(blocks)


#: A line longer than this is left as it is: no release has such a paragraph, and wrapping
#: a runaway template's megabytes would only delay the size limit that refuses it.
_WRAP_AT_MOST = 100_000


#: Lines wrapped before, and what they became (most lines of a variant's text part are the
#: same in every message: wrapping is a pure function of the line, so a remembered result
#: is the same text). Bounded by the characters it holds; emptied when full.
_WRAPPED: dict[str, tuple[str, ...]] = {}
_WRAPPED_CHARS = [0]
_WRAPPED_MAX_CHARS = 2_000_000


def _wrap(line: str) -> tuple[str, ...]:
    if len(line) <= WIDTH or len(line) > _WRAP_AT_MOST:
        return (line,)
    done = _WRAPPED.get(line)
    if done is None:
        done = _wrap_now(line)
        if _WRAPPED_CHARS[0] + len(line) > _WRAPPED_MAX_CHARS:
            _WRAPPED.clear()
            _WRAPPED_CHARS[0] = 0
        _WRAPPED[line] = done
        _WRAPPED_CHARS[0] += len(line)
    return done


def _wrap_now(line: str) -> tuple[str, ...]:
    """``line`` wrapped at :data:`WIDTH` with a hanging indent (no cache)."""
    m = _MARKER.match(line)
    assert m is not None
    lead, mark = m.group(1), m.group(2) or ""
    text = line[len(lead) :]
    if text and text.isprintable():  # its only whitespace is the ASCII space (the common case)
        rest = lead + " " * len(mark)
        if text[0] != " " and text[-1] != " " and "  " not in text:
            return tuple(_words(text.split(" "), lead, rest))
        return tuple(_greedy(text, lead, rest)) or (line,)
    return _textwrap(text, lead, mark, line)


def _textwrap(text: str, lead: str, mark: str, line: str) -> tuple[str, ...]:
    wrapped = textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=lead,
        subsequent_indent=lead + " " * len(mark),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return tuple(wrapped) or (line,)


_SPACE_RUNS = re.compile(r"( +)")


def _words(words: list[str], first: str, rest: str) -> list[str]:
    """:func:`_greedy` for words separated by single spaces (none empty): a line takes the
    next word when the word and the space before it fit, else the word starts a new line
    (alone when longer than a line)."""
    lines: list[str] = []
    indent = first
    width = WIDTH - len(first)
    start = 0
    size = len(words[0])
    for i in range(1, len(words)):
        n = len(words[i])
        if size + 1 + n <= width:
            size += 1 + n
            continue
        lines.append(indent + " ".join(words[start:i]))
        indent = rest
        width = WIDTH - len(rest)
        start = i
        size = n
    lines.append(indent + " ".join(words[start:]))
    return lines


def _greedy(text: str, first: str, rest: str) -> list[str]:
    """``textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
    break_long_words=False, break_on_hyphens=False)`` for a text whose only whitespace is
    the ASCII space: the same steps (chunks of words and of spaces; greedy lines; spaces
    dropped at the start of a line but the first and at the end of every line; a word
    longer than the line alone on its own), without textwrap's per-call set-up (a new
    TextWrapper, tab expansion, whitespace translation). The wrap of a line that holds a
    recipient's own values (a few a message) costs ~3 µs instead of ~11."""
    chunks = [c for c in _SPACE_RUNS.split(text) if c]
    chunks.reverse()
    lines: list[str] = []
    while chunks:
        line: list[str] = []
        size = 0
        indent = rest if lines else first
        width = WIDTH - len(indent)
        if lines and chunks[-1][0] == " ":
            del chunks[-1]
        while chunks:
            n = len(chunks[-1])
            if size + n > width:
                break
            line.append(chunks.pop())
            size += n
        if chunks and not line and len(chunks[-1]) > width:
            line.append(chunks.pop())
        if line and line[-1][0] == " ":
            del line[-1]
        if line:
            lines.append(indent + "".join(line))
    return lines


@functools.lru_cache(maxsize=64)
def _dateline_line(dateline: str) -> re.Pattern[str]:
    """The dateline alone on its line, a paragraph after it (compiled once per dateline)."""
    return re.compile(rf"(?m)^({re.escape(dateline)} [\u2014\u2013-]+)[ \t]*\n(?=\S)")


def finish_text(text: str, *, dateline: str | None = None) -> str:
    """The rendered text part made fit to read; see the module docstring."""
    if dateline:
        # The dateline leads the first paragraph (wire style), not a line of its own.
        at = text.find(dateline)
        if at >= 0:  # else nothing can match; and no match starts before the first one
            m = _dateline_line(dateline).search(text, at)
            if m is not None:
                text = text[: m.start()] + m.group(1) + " " + text[m.end() :]
    out: list[str] = []
    blank = False
    for raw in text.split("\n"):
        line = raw if raw == _SIGNATURE else raw.rstrip()
        if not line:
            if out and not blank:
                out.append("")
            blank = True
            continue
        blank = False
        if len(line) <= WIDTH and line[0] not in "=-":
            out.append(line)  # the common case, as _wrap would give it (no underline, no wrap)
            continue
        if _UNDERLINE.fullmatch(line) and out and out[-1] and not _UNDERLINE.fullmatch(out[-1]):
            heading = []
            for previous in reversed(out):
                if not previous:
                    break
                heading.append(len(previous))
            line = line[0] * min(max(heading), WIDTH)
            out.append(line)
            continue
        out.extend(_wrap(line))
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


_SPELLED_URL = re.compile(r"[ \t]*<[a-zA-Z][a-zA-Z0-9+.\-]*:[^<>\s]*>")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
#: Inbox previews show 40-140 characters; a longer first sentence is cut at a word.
PREHEADER_MAX = 140


#: The text :func:`first_sentence` reads at most; it tries a prefix of this many first.
_FIRST_READ = 4000
_FIRST_TRY = 400


def _flat(text: str) -> str:
    """``text`` without spelled-out URLs, on one line (runs of whitespace become one space)."""
    if "<" in text:  # the regex tries every position: skipped when it cannot match
        text = _SPELLED_URL.sub("", text)
    return " ".join(text.split())


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (plain text, spelled-out URLs left out) on one line, at most
    :data:`PREHEADER_MAX` characters (cut at a word, with an ellipsis): the default
    preheader.

    Reads the first :data:`_FIRST_READ` characters, but a short prefix first (issue 20:
    once per message, and the body is a few KB): cut just after a whitespace character,
    a prefix's flat form is a prefix of the whole one (no spelled-out URL can span the
    cut: a URL holds no whitespace, and spaces before one are dropped either way), so a
    sentence end it shows with a character after it, or more than ``PREHEADER_MAX``
    characters without one, decide the result as the whole text would."""
    text = text[:_FIRST_READ]
    size = _FIRST_TRY
    while size < len(text):
        cut = max(text.rfind(" ", 0, size), text.rfind("\n", 0, size)) + 1
        if cut > 0:
            flat = _flat(text[:cut])
            end = _SENTENCE_END.search(flat, 20)
            if end is not None and end.end() < len(flat):
                return _preheader(flat[: end.end()])
            if len(flat) > PREHEADER_MAX:
                return _preheader(flat)  # the sentence runs past the preview's length
        size *= 4
    # A link's URL (``text <https://...>``) is no reading matter for an inbox preview.
    flat = _flat(text)
    end = _SENTENCE_END.search(flat, 20)
    return _preheader(flat[: end.end()] if end else flat)


def _preheader(sentence: str) -> str:
    if len(sentence) <= PREHEADER_MAX:
        return sentence
    return sentence[: PREHEADER_MAX - 1].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"
