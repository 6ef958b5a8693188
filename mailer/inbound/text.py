"""What a reply says in its own words: its readable text with the quoted original cut
off (``>`` lines, "On ... wrote:", Outlook's "-----Original Message-----" or
"From: ... Sent:" block, and their German, French and Spanish forms), its sender and
subject. No I/O."""

from __future__ import annotations

import re
from email.header import Header, decode_header
from email.message import Message
from email.utils import getaddresses

from mailer.bounces.notice import header, human_text

__all__ = ["own_text", "sender_address", "sender_name", "subject"]

# A line that starts the quoted original: everything from it on is not the reply's own.
_QUOTE_START = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original"
    r"|forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado)\s*-{2,}"
    r"|_{5,}"
    r"|(?:on|am|le|el)\s.{4,200}?(?:wrote|schrieb|a écrit|escribió)\s*:"
    r"|(?:from|von|de|envoyé par)\s*:\s.+\n\s*(?:sent|gesendet|envoyé|enviado|date|datum|fecha)\s*:"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_LINE = re.compile(r"^\s*>.*$\n?", re.MULTILINE)


def own_text(msg: Message) -> str:
    """The reply's own text: text/plain (else text/html without tags), up to where it
    starts quoting the message it answers, quoted ``>`` lines dropped."""
    text = human_text(msg).replace("\r\n", "\n").replace("\r", "\n")
    start = _QUOTE_START.search(text)
    if start is not None:
        text = text[: start.start()]
    text = _QUOTED_LINE.sub("", text)
    return text.strip()


def sender_address(msg: Message) -> str | None:
    """The bare address of ``From`` (lower-cased), else None."""
    value = header(msg, "From")
    if not value:
        return None
    for _, address in getaddresses([value]):
        if "@" in address:
            return address.strip().lower()
    return None


def sender_name(msg: Message) -> str | None:
    """The display name of ``From``, else None."""
    value = header(msg, "From")
    if not value:
        return None
    for name, address in getaddresses([value]):
        if "@" in address and name.strip():
            return _decoded(name).strip() or None
    return None


def subject(msg: Message) -> str:
    """The subject, RFC 2047 words decoded, and raw UTF-8 (which some mailers send
    unencoded) read as UTF-8."""
    value = msg.get("Subject")
    if value is None:
        return ""
    return " ".join(_decoded(value).split())


def _decoded(value: Header | str) -> str:
    """A header value with its RFC 2047 words (and raw UTF-8) decoded."""
    pieces: list[str] = []
    try:
        for chunk, charset in decode_header(value):
            if isinstance(chunk, str):
                pieces.append(chunk)
                continue
            try:
                pieces.append(chunk.decode(charset if charset and charset != "unknown-8bit" else "utf-8"))
            except (LookupError, UnicodeError):
                pieces.append(chunk.decode("utf-8", "replace"))
    except (ValueError, UnicodeError):
        pieces = [str(value)]
    return "".join(pieces)
