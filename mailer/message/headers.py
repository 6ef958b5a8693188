"""Header values: validation against injection, RFC 2047 encoding, RFC 5322 folding.

Everything here returns ``str`` built of ASCII only (but for the local part of an
SMTPUTF8 address, RFC 6532), with ``\\r\\n`` line ends, so that
``render`` can join header lines straight into message bytes without ``email.message``
(whose default policy costs ~3 ms a message; these helpers cost a few µs).

Contracts:

- :func:`check_header_value` is the single gate: CR, LF, NUL, any other C0 control
  character except TAB, DEL, the C1 controls and the Unicode line/paragraph separators
  raise :class:`~mailer.domain.errors.HeaderInjectionError`.
- :func:`header_line` folds at spaces only (unfolding, RFC 5322 §2.2.3, restores the
  value exactly), aiming at 78 characters a line (§2.1.1), also right after the colon
  when the first word would not fit, and refusing to emit a line over 998 octets.
- Non-ASCII text becomes base64 encoded-words (RFC 2047 §4.1), each at most 75
  characters (§2), split on character boundaries so each word decodes on its own.
"""

from __future__ import annotations

import base64
import re
from email.utils import formataddr

from mailer.domain.addresses import ascii_domain
from mailer.domain.errors import HeaderInjectionError, InputError

__all__ = [
    "MAX_LINE",
    "TARGET_LINE",
    "check_header_value",
    "encode_address",
    "encode_phrase",
    "encode_unstructured",
    "header_line",
]

#: RFC 5322 §2.1.1: a line MUST be no more than 998 characters, SHOULD be no more than 78.
MAX_LINE = 998
TARGET_LINE = 78

# TAB is legal whitespace in a header (WSP); every other control character is not,
# and U+2028/U+2029 are treated as line breaks by some parsers and MUAs.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")

# Raw UTF-8 bytes per encoded word: 39 bytes -> 52 base64 chars -> a 64-char word,
# so even "Subject: " + word stays under 78.
_WORD_BYTES = 39
_WORD_PREFIX = "=?utf-8?b?"
_WORD_SUFFIX = "?="


def check_header_value(field: str, value: str) -> str:
    """Return ``value`` unchanged if it is safe to put in header ``field``.

    Raises :class:`HeaderInjectionError` (naming ``field``) when ``value`` contains CR,
    LF, NUL or another control character (TAB excepted).
    """
    if _FORBIDDEN.search(value) is not None:
        raise HeaderInjectionError(field)
    return value


def _encoded_words(text: str) -> list[str]:
    """Split ``text`` into RFC 2047 base64 encoded-words of at most 39 UTF-8 bytes each."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > _WORD_BYTES and chunk:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return [_WORD_PREFIX + base64.b64encode(w.encode("utf-8")).decode("ascii") + _WORD_SUFFIX for w in words]


def _needs_encoding(text: str) -> bool:
    # "=?" in plain ASCII would be taken for an encoded word by the reader (RFC 2047 §6.1).
    return not text.isascii() or "=?" in text


def encode_unstructured(text: str) -> str:
    """Encode an unstructured value (Subject): ASCII passes through, else encoded-words.

    Adjacent encoded-words are separated by a space, which decoders drop (RFC 2047 §6.2),
    so the decoded value equals ``text``. ASCII text with a run of more than 998 characters
    without a space (which cannot be folded) is also encoded.
    """
    if not _needs_encoding(text) and all(len(part) < MAX_LINE - 40 for part in text.split(" ")):
        return text
    return " ".join(_encoded_words(text))


def encode_phrase(text: str) -> str:
    """Encode a display-name or List-Id phrase; ASCII is quoted only when needed."""
    if _needs_encoding(text):
        return " ".join(_encoded_words(text))
    return text


def encode_address(name: str, address: str) -> str:
    """Return ``name <address>`` with the display name quoted or encoded as needed.

    An internationalized domain is written as IDNA A-labels (``xn--``, RFC 5890), as the
    envelope carries it. A non-ASCII local part stays UTF-8 (RFC 6532 section 3.2): such
    a message can only travel with SMTPUTF8, which the transport checks before sending.
    Raises :class:`InputError` for a domain without an IDNA form. An empty ``name`` gives
    the bare address.
    """
    address = ascii_domain(address)
    if not name:
        return address
    if _needs_encoding(name):
        return f"{encode_phrase(name)} <{address}>"
    if address.isascii():
        return formataddr((name, address))
    # formataddr refuses a non-ASCII address; let it quote the name against a stand-in.
    return formataddr((name, "a@b")).removesuffix("<a@b>") + f"<{address}>"


def header_line(name: str, value: str) -> str:
    """Return ``"Name: value\\r\\n"`` folded at spaces to lines of about 78 characters.

    ``value`` must already be ASCII (encode first) and free of CR/LF (check first).
    Raises :class:`InputError` if a word is too long to fit in 998 octets.
    """
    parts = value.split(" ")
    lines: list[str] = []
    cur = name + ":"
    has_content = False
    for part in parts:
        piece = " " + part
        # The first word too may start a line of its own (folding white space may follow
        # the colon): "List-Unsubscribe:" CRLF " <https://...>" stays within 78.
        if part and len(cur) + len(piece) > TARGET_LINE and (has_content or len(piece) <= TARGET_LINE):
            lines.append(cur)
            cur = piece
        else:
            cur += piece
        has_content = True
    lines.append(cur)
    for line in lines:
        if len(line) > MAX_LINE:
            raise InputError(f"{name}: a word of the header value is too long to fold")
    return "\r\n".join(lines) + "\r\n"
