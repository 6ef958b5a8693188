"""Path parameters that can name something: ids within the columns' range, no NUL.

A value outside that (``/releases/99999999999999999999``, ``/releases/abc``, a NUL in an
address) names nothing, so the answer is 404 like for a missing row; the value never
reaches the database, which would fail with an overflow or encoding error (a 500).
"""

from __future__ import annotations

from fastapi import Request

from mailer.domain.states import MAX_ID

__all__ = ["MAX_ID", "PathNotFound", "path_ids"]


class PathNotFound(Exception):
    """A path parameter that cannot name anything (the app answers 404)."""


def path_ids(request: Request) -> None:
    """Router dependency: every ``*_id`` path parameter is a number from 1 to
    :data:`MAX_ID`, and no path parameter holds a NUL; else :class:`PathNotFound`."""
    for name, value in request.path_params.items():
        text = str(value)
        if "\x00" in text:
            raise PathNotFound(name)
        if name.endswith("_id") and not (text.isascii() and text.isdigit() and len(text) <= 10):
            raise PathNotFound(name)
        if name.endswith("_id") and not 1 <= int(text) <= MAX_ID:
            raise PathNotFound(name)
