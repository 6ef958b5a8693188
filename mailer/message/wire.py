"""Message bytes whose producer vouches for their SMTP wire form (:class:`CrlfReady`,
:class:`WireReady`): in the message layer (below SMTP), so that the
renderer (in the render process) can produce them and they unpickle in the sending
process (:mod:`mailer.smtp.client` re-exports :class:`WireReady`)."""

from __future__ import annotations

from typing import Any

__all__ = ["CrlfReady", "KnownDots", "WireReady", "crlf_only", "line_dots", "wire_clean"]


class CrlfReady(bytes):
    """Message bytes whose producer guarantees that every line ends CRLF (no bare CR or
    LF) and that they end with CRLF (or are empty); a line may start with ``.``.
    :func:`mailer.smtp.client.dot_stuff` then skips its line-ending passes and only
    doubles leading dots. Any transformation gives plain ``bytes`` again."""

    __slots__ = ()


class WireReady(CrlfReady):
    """Message bytes whose producer guarantees the SMTP wire form already: every line
    ending CRLF (no bare CR or LF), no line starting with ``.``, and a final CRLF (or
    empty). :func:`mailer.smtp.client.dot_stuff` then only appends the terminating ``.``
    CRLF, without scanning. Any transformation (a DKIM signature, a concatenation) gives
    plain ``bytes`` again, which are checked; so only wrap bytes at the point where they
    are known clean (the renderer: :meth:`mailer.message.mime.CompiledVariant.run`)."""

    __slots__ = ()


class KnownDots(CrlfReady):
    """:class:`CrlfReady` bytes whose producer also says where each line that starts with
    ``.`` begins: ``dots``, every such offset in ascending order, none missing (what
    :func:`line_dots` finds). :func:`mailer.smtp.client.dot_stuff` then doubles those dots
    by slicing, without scanning the message (the renderer's messages with such a line:
    a quoted-printable soft break before a ``.``, often in a line holding a recipient's
    own link, so in every message of a release; ~20 µs a message on the sending event
    loop, issue 20). Only the renderer makes them, from the bytes it just assembled."""

    dots: tuple[int, ...]

    def __new__(cls, data: bytes, dots: tuple[int, ...]) -> KnownDots:
        made = super().__new__(cls, data)
        made.dots = dots
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return (KnownDots, (bytes(self), self.dots))


def line_dots(data: bytes) -> tuple[int, ...]:
    """The offsets at which the lines of CRLF ``data`` that start with ``.`` begin."""
    found = [0] if data.startswith(b".") else []
    at = data.find(b"\r\n.")
    while at >= 0:
        found.append(at + 2)
        at = data.find(b"\r\n.", at + 3)
    return tuple(found)


def crlf_only(data: bytes) -> bool:
    """Every line ending of ``data`` is CRLF (no bare CR or LF): the check
    :func:`mailer.smtp.client.dot_stuff` makes (three passes over ``data``)."""
    crlf = data.count(b"\r\n")
    return data.count(b"\r") == crlf and data.count(b"\n") == crlf


def wire_clean(data: bytes) -> bool:
    """``data`` has every line ending CRLF and no line starting with ``.``."""
    return crlf_only(data) and not data.startswith(b".") and b"\r\n." not in data
