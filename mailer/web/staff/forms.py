"""What staff type into forms and query strings, parsed: times, ids, short text.
A bad value is an InputError naming the field (the pages show it; never a 500)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from mailer.domain.errors import InputError


def parse_when(value: str | None, name: str) -> datetime | None:
    """A time from a form: ISO 8601 with a zone, or without one (then UTC, as the
    ``datetime-local`` inputs are labelled). Empty is None; InputError otherwise."""
    if value is None or not value.strip():
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{name}: not a date and time: {value!r}") from None
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{name}: out of range: {value!r}") from None


def form_int(value: str | None, name: str) -> int | None:
    """An id from a form (0 <= n < 2**31); empty is None; InputError otherwise."""
    if value is None or not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"{name}: not a number: {value!r}") from None
    if not 0 <= number < 2**31:
        raise InputError(f"{name}: out of range")
    return number


def form_text(value: str | None) -> str | None:
    """Short text from a form, stripped and cut to 320 characters; empty is None;
    InputError for a NUL."""
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise InputError("text with a NUL character")
    return value.strip()[:320]


def query_string(form: dict[str, str]) -> str:
    """The non-empty fields of ``form`` as a query string (for pager links)."""
    return urlencode({k: v for k, v in form.items() if v})
