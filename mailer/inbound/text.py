"""What a reply says in its own words: its readable text with the quoted original cut
off (``>`` lines, "On ... wrote:", Outlook's "-----Original Message-----" or
"From: ... Sent:" block, and their German, French and Spanish forms), its sender and
subject. No I/O."""

from __future__ import annotations

import html as html_lib
import re
from email.header import Header, decode_header
from email.message import Message
from email.utils import getaddresses

from mailer.bounces.notice import decoded, header, parts

__all__ = ["own_text", "sender_address", "sender_name", "subject"]

# A line that starts the quoted original: everything from it on is not the reply's own.
_QUOTE_START = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original"
    r"|forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado)\s*-{2,}"
    r"|_{5,}"
    r"|(?:on|am|le|el)\s[^\n]{4,200}?(?:\n[^\n]{0,200}?)?(?:wrote|schrieb|a écrit|escribió)\s*:"
    r"|(?:from|von|de|envoyé par)\s*:\s.+\n\s*(?:sent|gesendet|envoyé|enviado|date|datum|fecha)\s*:"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_LINE = re.compile(r"^\s*>.*$\n?", re.MULTILINE)


_HTML_DROP = re.compile(
    r"<(head|style|script|blockquote)\b.*?</\1\s*>|<div[^>]*class=\"?(?:gmail_quote|OutlookMessageHeader)[^>]*>.*",
    re.IGNORECASE | re.DOTALL,
)
_HTML_BREAK = re.compile(r"<(?:br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]*>")


def own_text(msg: Message) -> str:
    """The reply's own text: text/plain (else text/html as text: quoted blocks, styles
    and tags dropped, entities read), up to where it starts quoting the message it
    answers, quoted ``>`` lines dropped."""
    text = _readable(msg).replace("\r\n", "\n").replace("\r", "\n")
    start = _QUOTE_START.search(text)
    if start is not None:
        text = text[: start.start()]
    text = _QUOTED_LINE.sub("", text)
    return text.strip()


def _readable(msg: Message) -> str:
    leaves = [p for p in parts(msg) if not p.is_multipart()]
    plain = [decoded(p) for p in leaves if p.get_content_type() == "text/plain" and not _attachment(p)]
    if plain:
        return "\n".join(plain)
    html = "\n".join(decoded(p) for p in leaves if p.get_content_type() == "text/html")
    html = _HTML_BREAK.sub("\n", _HTML_DROP.sub(" ", html))
    return html_lib.unescape(_HTML_TAG.sub(" ", html))


def _attachment(part: Message) -> bool:
    return (part.get("Content-Disposition") or "").strip().lower().startswith("attachment")


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
