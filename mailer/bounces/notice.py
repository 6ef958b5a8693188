"""The anatomy of a returned message, shared by every format reader: its own MIME parts,
its human-readable text and the part of it that reports the failure, what that text
says about one address, and the headers of the original it returns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser

#: A diagnostic taken from a notice's text is cut to this many characters.
MAX_DIAGNOSTIC = 500

# Lines after which a notice quotes the original message.
_COPY_MARKER_RE = re.compile(
    r"^.*(?:below this line is a copy of the message|this is a copy of (?:your|the) message"
    r"|original message headers|original message follows|-{2,} ?original message ?-{2,}|below is a copy of the"
    r" original message|unsent message below|text of (?:the|your) returned message"
    r"|the headers? of (?:your|the original) message|message headers follow).*$",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINE_RE = re.compile(r"^[A-Za-z0-9-]+:[ \t]", re.MULTILINE)


# --- MIME -----------------------------------------------------------------------------------


def parts(msg: Message) -> Iterator[Message]:
    """Every part of the notice itself: never descends into a returned message or into
    the header blocks of a delivery-status part."""
    yield msg
    if msg.get_content_maintype() == "multipart" and msg.is_multipart():
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                yield from parts(sub)


def human_text(msg: Message) -> str:
    """The notice's own readable text: its text/plain parts, else its text/html ones."""
    leaves = [p for p in parts(msg) if not p.is_multipart()]
    plain = [decoded(p) for p in leaves if p.get_content_type() == "text/plain"]
    if plain:
        return "\n".join(plain)
    html = [decoded(p) for p in leaves if p.get_content_type() == "text/html"]
    return re.sub(r"<[^>]*>", " ", "\n".join(html))


def decoded(part: Message) -> str:
    """A leaf part's payload as text, in its declared charset (latin-1 if unknown)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("latin-1")


def returned_original(msg: Message) -> Message | None:
    """The headers of the returned original: a message/rfc822 or text/rfc822-headers
    part, else a copy quoted in the text after a marker line."""
    for part in parts(msg):
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if content_type == "text/rfc822-headers":
            return HeaderParser().parsestr(decoded(part).lstrip())
    return _quoted_original(human_text(msg))


def _quoted_original(text: str) -> Message | None:
    marker = _COPY_MARKER_RE.search(text)
    if marker is None:
        return None
    # Skip the rest of the preamble ("------ No more than 20K characters of the body
    # are included.") up to the first header line.
    start = _HEADER_LINE_RE.search(text, marker.end(), marker.end() + 1000)
    if start is None:
        return None
    headers = HeaderParser().parsestr(text[start.start() :])
    return headers if headers.get("Message-ID") or headers.get("To") else None


def header(msg: Message, name: str) -> str | None:
    """A header's value as one unfolded line, or None when absent."""
    value = msg.get(name)
    if value is None:
        return None
    return " ".join(str(value).split())


def subject(msg: Message) -> str:
    """The subject, RFC 2047 encoded words decoded (Japanese subjects always are)."""
    value = msg.get("Subject")
    if value is None:
        return ""
    try:
        return " ".join(str(make_header(decode_header(str(value)))).split())
    except (LookupError, ValueError, UnicodeError):
        return " ".join(str(value).split())


# --- text -----------------------------------------------------------------------------------


def failure_area(text: str) -> str:
    """The human-readable text up to where it starts quoting the original message."""
    marker = _COPY_MARKER_RE.search(text)
    return text[: marker.start()] if marker else text


def context(area: str, address: str) -> str | None:
    """What the text says about ``address``: the rest of each line naming it, plus the
    lines that continue it (more indented, or the paragraph below a bare address)."""
    lines = area.splitlines()
    pieces: list[str] = []
    needle = address.lower()
    used: set[int] = set()
    for index, line in enumerate(lines):
        position = line.lower().find(needle)
        if position < 0 or index in used:
            continue
        rest = line[position + len(needle) :].strip(" \t<>:;,.()")
        indent = len(line) - len(line.lstrip())
        bare = not rest
        if rest:
            pieces.append(rest)
        for number in range(index + 1, len(lines)):
            following = lines[number]
            deeper = len(following) - len(following.lstrip()) > indent
            starts_entry = following.strip().lstrip("<").lower().startswith(needle)
            if not following.strip() or starts_entry or not (bare or deeper):
                break
            used.add(number)
            pieces.append(following.strip())
    joined = squash(" ".join(unique(pieces)))
    return joined or None


def squash(text: str) -> str:
    """``text`` on one line, whitespace collapsed, cut to :data:`MAX_DIAGNOSTIC`."""
    squashed = " ".join(text.split())
    return squashed[:MAX_DIAGNOSTIC]


def unique(items: list[str]) -> list[str]:
    """``items`` without case-insensitive repeats, first occurrence kept, in order."""
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            kept.append(item)
    return kept
