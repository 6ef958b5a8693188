"""Local-hour delivery: a wall-clock time (``send_at_local = "2026-12-02 09:00"``) read in
each contact's own time zone. No I/O beyond the system's zone data.

A contact whose ``timezone`` is missing or not an IANA zone name gets the release's zone.
The earliest instant any wave can fall on is the wall time in the zone furthest ahead of
UTC (UTC+14, Kiribati's Line Islands): the release is planned then, each row carrying its
own not-before.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.domain.errors import InputError

__all__ = ["EARLIEST_OFFSET", "earliest", "parse_local", "wave_times", "zone"]

#: the largest offset ahead of UTC of any zone (Pacific/Kiritimati)
EARLIEST_OFFSET = timedelta(hours=14)
_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone ``name``, or None when it is missing or not one."""
    if not name or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def parse_local(value: str, name: str = "send_at_local") -> datetime:
    """``"2026-12-02 09:00"`` as a naive wall-clock time; InputError otherwise."""
    for fmt in _FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    raise InputError(f'{name}: {value!r} is not a local time like "2026-12-02 09:00" (no zone: each contact\'s own)')


def at(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of the wall-clock time ``wall`` in ``tz`` (an hour skipped by a DST
    change is read with the offset before it; a repeated hour, the first time)."""
    return wall.replace(tzinfo=tz).astimezone(UTC)


def earliest(wall: datetime) -> datetime:
    """The first instant any zone reaches ``wall`` (at UTC+14)."""
    return (wall - EARLIEST_OFFSET).replace(tzinfo=UTC)


def wave_times(wall: datetime, names: Iterable[str | None], default: ZoneInfo) -> tuple[dict[str, datetime], datetime]:
    """The UTC instant of ``wall`` for each valid zone among ``names``, and for everyone
    else (a missing or invalid zone: ``default``)."""
    found: dict[str, datetime] = {}
    for name in names:
        tz = zone(name)
        if name is not None and tz is not None:
            found[name] = at(wall, tz)
    return found, at(wall, default)
