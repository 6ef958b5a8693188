"""Times people type: ISO 8601 with an offset, or a wall-clock time in a named zone.

Accepted (``name`` in errors is the field or option the value came from)::

    2026-12-01T09:00:00-05:00          ISO 8601 with an offset (or Z)
    2026-12-01 09:00 America/New_York  a wall-clock time in an IANA zone
    2026-12-01T09:00 Europe/Paris      the same with a T
    2026-12-01 09:00 UTC               UTC by name
    2026-12-01 09:00                   only with ``default_zone`` (a form labelled with the user's zone)

A wall-clock time that does not exist in its zone (skipped by a daylight-saving jump) is
refused; one that happens twice (the hour repeated in autumn) is refused too, unless an
offset is given, because the two readings are an hour apart. :func:`require_future`
refuses a time already past. No I/O besides the system's zone database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.domain.errors import InputError

__all__ = ["EXAMPLE", "format_in_zone", "parse_when", "require_future", "zone"]

#: What an error message shows as a good value.
EXAMPLE = "2026-12-01 09:00 America/New_York or 2026-12-01T09:00:00-05:00"

_WALL = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{1,2}:\d{2}(?::\d{2})?)(?:\s+(?P<zone>[A-Za-z][A-Za-z0-9_+\-/]*))?"
)


def zone(name: str, field: str = "time zone") -> ZoneInfo:
    """The IANA zone ``name`` (``UTC`` included); InputError naming ``field`` otherwise."""
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return ZoneInfo("UTC")
    if not text or ".." in text or text.startswith("/") or len(text) > 64:
        raise InputError(f"{field}: {name!r} is not a time zone (e.g. America/New_York, Europe/London, UTC)")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{field}: {name!r} is not a time zone (e.g. America/New_York, Europe/London, UTC)") from None


def _localize(naive: datetime, tz: ZoneInfo, name: str, shown: str) -> datetime:
    """``naive`` read in ``tz``; InputError when that wall-clock time is skipped or repeated there."""
    early = naive.replace(tzinfo=tz, fold=0)
    late = naive.replace(tzinfo=tz, fold=1)
    # A skipped time does not survive the round trip through UTC.
    if early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise InputError(f"{name}: {shown} does not exist in {tz.key} (the clocks skip it)")
    if early.utcoffset() != late.utcoffset():
        raise InputError(
            f"{name}: {shown} happens twice in {tz.key} (the clocks go back); give an offset, "
            f"e.g. {naive:%Y-%m-%dT%H:%M}{_offset(early)} or {naive:%Y-%m-%dT%H:%M}{_offset(late)}"
        )
    return early


def _offset(dt: datetime) -> str:
    delta = dt.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_when(value: str, name: str, *, default_zone: str | None = None) -> datetime:
    """An aware datetime from ``value`` (see the module docstring).

    ``default_zone`` reads a time written without a zone (a form field labelled with the
    user's zone); without it such a time is an InputError. Raises InputError naming
    ``name`` for anything else.
    """
    text = value.strip()
    if not text:
        raise InputError(f"{name}: give a date and time, e.g. {EXAMPLE}")
    m = _WALL.fullmatch(text)
    if m is not None and (m.group("zone") or default_zone):
        try:
            naive = datetime.fromisoformat(f"{m.group('date')}T{m.group('time').zfill(5)}")
        except ValueError:
            raise InputError(f"{name}: {value!r} is not a date and time (e.g. {EXAMPLE})") from None
        label = m.group("zone") or default_zone
        assert label is not None
        return _localize(naive, zone(label, name), name, text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{name}: {value!r} is not a date and time (e.g. {EXAMPLE})") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InputError(f"{name}: {text} has no time zone (e.g. {EXAMPLE})")
    return parsed


def require_future(at: datetime, now: datetime, name: str, *, hint: str = "") -> datetime:
    """``at`` when it is not before ``now``; otherwise InputError saying it is past (and ``hint``)."""
    if at < now:
        ago = now - at
        minutes = int(ago.total_seconds() // 60)
        how_long = f"{minutes} minute{'s' if minutes != 1 else ''} ago" if minutes < 120 else f"{ago.days} days ago"
        if minutes >= 120 and ago.days < 2:
            how_long = f"{minutes // 60} hours ago"
        raise InputError(
            f"{name}: {at.isoformat()} is in the past ({how_long}; now is {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
            + (f"; {hint}" if hint else "")
        )
    return at


def format_in_zone(at: datetime, zone_name: str | None) -> str:
    """``at`` as ``2026-12-01 09:00 EST (America/New_York)``; UTC when ``zone_name`` is empty or unknown."""
    try:
        tz = zone(zone_name) if zone_name else ZoneInfo("UTC")
    except InputError:
        tz = ZoneInfo("UTC")
    local = at.astimezone(tz)
    abbreviation = local.tzname() or ""
    if tz.key == "UTC":
        return f"{local:%Y-%m-%d %H:%M} UTC"
    return f"{local:%Y-%m-%d %H:%M} {abbreviation} ({tz.key})"
