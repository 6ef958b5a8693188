"""Quoted-printable bodies: :func:`qp` (the whole text at once, as every message was
encoded before issue 20) and :class:`QPLines` (the same bytes, each distinct line
encoded once per variant)."""

from __future__ import annotations

import binascii

__all__ = ["QP_CACHE_CHARS", "QPLines", "qp"]


def qp(text: str) -> bytes:
    """UTF-8 quoted-printable body with CRLF line ends (lines ≤ 76 octets)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


#: What a :class:`QPLines` may hold (characters of its lines) before it starts afresh.
QP_CACHE_CHARS = 2_000_000


class QPLines:
    """:func:`qp`, the same bytes, encoding each distinct line once.

    Most lines of a variant's text and HTML are the same in every message; only those
    with a per-recipient value differ. ``binascii.b2a_qp`` (``istext=True``, no CR in
    its input) decides every byte from the line it is on alone: the output column
    restarts at each LF, a ``.`` is encoded when it starts an output line and a LF or
    the end of the data follows it, a space or tab is encoded before a LF or at the end
    of the data, and a soft break depends on the column and on whether a LF comes next.
    So the encoding of ``text`` is the concatenation of the encodings of its lines, each
    with its LF (the last one, without a LF, encoded alone as the end of the data).
    Lines are remembered (bounded by :data:`QP_CACHE_CHARS`); races between threads
    only cost an extra encoding.
    """

    __slots__ = ("_chars", "_lines")

    def __init__(self) -> None:
        #: line -> its encoding; only lines whose encoding has no output line starting
        #: with "." (so a line found here never needs dot-stuffing; the others, rare, are
        #: encoded each time)
        self._lines: dict[str, bytes] = {}
        self._chars = 0

    def encode(self, text: str) -> bytes:
        """``qp(text)``."""
        return self.encode_wire(text)[0]

    def encode_wire(self, text: str) -> tuple[bytes, bool]:
        """``qp(text)``, and whether no line of it starts with ``.`` (its lines all end
        CRLF, but the last, which has no line end: see :func:`qp`): SMTP needs no
        dot-stuffing then. Known without a scan: the remembered lines are clean, and only
        the lines encoded now are looked at."""
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        last = lines.pop()
        # The lookups in C; only the lines not seen before (a few a message) in Python.
        encoded: list[bytes | None] = list(map(self._lines.get, lines))
        clean = True
        try:
            at = -1
            while True:
                try:
                    at = encoded.index(None, at + 1)
                except ValueError:
                    break
                line = encoded[at] = self._encode_line(lines[at])
                clean = clean and not _dotted(line)
            if last:
                tail = binascii.b2a_qp(last.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
                encoded.append(tail)
                clean = clean and not _dotted(tail)
        except UnicodeEncodeError:
            return qp(text), False  # the same error as before (a lone surrogate)
        return b"".join(encoded), clean  # type: ignore[arg-type]  # no None left

    def _encode_line(self, line: str) -> bytes:
        """One line and its LF, encoded and remembered (unless an output line of it
        starts with ``.``)."""
        encoded = binascii.b2a_qp((line + "\n").encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
        if _dotted(encoded):
            return encoded  # not remembered (see _lines)
        if self._chars + len(line) > QP_CACHE_CHARS:
            self._lines.clear()
            self._chars = 0
        self._lines[line] = encoded
        self._chars += len(line)
        return encoded


def _dotted(encoded: bytes) -> bool:
    """An output line of ``encoded`` (a soft-broken one too) starts with ``.``."""
    return encoded.startswith(b".") or b"\r\n." in encoded
