"""An embargo as an object: the instant news may be published, and the zone it was given in.

Written in a release's front matter as a named zone (``2026-12-01 09:00 America/New_York``)
or as ISO 8601 with an offset (``2026-12-01T09:00:00-05:00``, a TOML datetime too).
Shown to each recipient in their own zone (the contact's ``timezone``, else the zone the
embargo was written in) and always in UTC, so nobody has to convert a time under
deadline. Pure: no I/O but the system's time-zone database (:mod:`zoneinfo`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.domain.errors import InputError

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# "2026-12-01 09:00 America/New_York" (a T instead of the space, seconds optional)
_NAMED = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2})?)\s+([A-Za-z][A-Za-z0-9_+\-/]*)")
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


@dataclass(frozen=True)
class Embargo:
    """When an embargo lifts (``at``, aware UTC) and the zone it was written in (an
    IANA name such as ``America/New_York``, ``UTC``, or a fixed offset ``-05:00``)."""

    at: datetime
    zone: str

    def local(self) -> datetime:
        """The lift in the zone it was written in."""
        return self.at.astimezone(zone_info(self.zone))


@dataclass(frozen=True)
class EmbargoText:
    """How one reader sees an embargo: ``local`` in their zone, ``utc``, ``full`` (both,
    or only UTC when the zone is UTC) and ``subject`` (the short form of the subject prefix)."""

    local: str
    utc: str
    full: str
    subject: str


@lru_cache(maxsize=512)
def zone_info(zone: str) -> tzinfo:
    """The tzinfo of an IANA name, ``UTC``/``Z``, or a fixed offset ``±HH:MM``;
    InputError for anything else."""
    if zone in ("UTC", "Z", "Etc/UTC"):
        return UTC
    if _OFFSET.fullmatch(zone):
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"time zone {zone!r}: not an IANA time zone (e.g. America/New_York)") from exc


def _zone_of(value: datetime) -> str:
    """The name of an aware datetime's zone: its IANA key, else its fixed offset."""
    key = getattr(value.tzinfo, "key", None)
    if isinstance(key, str):
        return key
    offset = value.utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_embargo(value: Any, name: str = "embargo") -> Embargo | None:
    """An embargo from the front matter: ``"2026-12-01 09:00 America/New_York"``, an ISO
    8601 string with an offset, or a TOML datetime with an offset. None for None.

    Raises InputError naming ``name`` for a date without a time, a time without a zone,
    an unknown zone, or a local time that does not exist in its zone (a DST gap).
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        named = _NAMED.fullmatch(text)
        if named is not None and not _OFFSET.fullmatch(named.group(3)) and named.group(3) != "Z":
            zone = named.group(3)
            try:
                info = zone_info(zone)
            except InputError as exc:
                raise InputError(f"{name}: {exc}") from exc
            try:
                naive = datetime.fromisoformat(f"{named.group(1)}T{named.group(2)}")
            except ValueError as exc:
                raise InputError(f"{name}: {text!r} is not a date and time") from exc
            local = naive.replace(tzinfo=info)
            if local.astimezone(UTC).astimezone(info).replace(tzinfo=None) != naive:
                raise InputError(f"{name}: {text!r} does not exist in {zone} (a daylight-saving gap)")
            return Embargo(local.astimezone(UTC), zone if zone not in ("Z", "Etc/UTC") else "UTC")
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InputError(
                f"{name}: {text!r} is not a time with a zone "
                '(e.g. "2026-12-01 09:00 America/New_York" or "2026-12-01T09:00:00-05:00")'
            ) from exc
    if not isinstance(value, datetime):
        kind = "a date without a time" if isinstance(value, date) else type(value).__name__
        raise InputError(f"{name}: expected a date and time with a zone, got {kind}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{name}: {value.isoformat()} has no time zone (e.g. add America/New_York or -05:00)")
    return Embargo(value.astimezone(UTC), _zone_of(value))


def _clock(at: datetime) -> str:
    return f"{at:%H:%M}"


def _day(at: datetime) -> str:
    return f"{at.day} {_MONTHS[at.month - 1]} {at.year}"


def _abbreviation(at: datetime, zone: str) -> str:
    """``EST``, or ``UTC-05:00`` where the zone database has only a number."""
    abbr = at.tzname() or ""
    if not abbr or abbr[0] in "+-":
        offset = at.strftime("%z")
        return f"UTC{offset[:3]}:{offset[3:5]}"
    return abbr


@lru_cache(maxsize=1024)
def embargo_text(at: datetime, reader_zone: str | None, fallback_zone: str) -> EmbargoText:
    """The embargo ``at`` as a reader in ``reader_zone`` sees it (``fallback_zone`` when the
    reader has none or an unknown one): e.g. ``1 December 2026, 09:00 EST (America/New_York)
    / 1 December 2026, 14:00 UTC``."""
    utc_at = at.astimezone(UTC)
    zone = reader_zone or fallback_zone
    try:
        info = zone_info(zone)
    except InputError:
        zone = fallback_zone
        info = zone_info(zone)
    local_at = utc_at.astimezone(info)
    utc = f"{_day(utc_at)}, {_clock(utc_at)} UTC"
    short_utc = f"{_clock(utc_at)} UTC"
    if local_at.utcoffset() == timedelta(0) and zone in ("UTC", "+00:00", "-00:00"):
        return EmbargoText(utc, utc, utc, f"{utc_at.day} {_MONTHS[utc_at.month - 1][:3]} {short_utc}")
    abbr = _abbreviation(local_at, zone)
    named = f" ({zone})" if "/" in zone else ""
    local = f"{_day(local_at)}, {_clock(local_at)} {abbr}{named}"
    same_day = local_at.date() == utc_at.date()
    subject_local = f"{local_at.day} {_MONTHS[local_at.month - 1][:3]} {_clock(local_at)} {abbr}"
    subject_utc = short_utc if same_day else f"{utc_at.day} {_MONTHS[utc_at.month - 1][:3]} {short_utc}"
    return EmbargoText(local, utc, f"{local} / {utc}", f"{subject_local} / {subject_utc}")


def subject_prefix(text: EmbargoText) -> str:
    """What goes before an embargoed message's subject."""
    return f"[EMBARGOED until {text.subject}] "


def check_embargo_after_send(embargo_at: datetime | None, send_at: datetime | None) -> str | None:
    """Why an embargo does not fit the send time (it lifts before the release goes out:
    the first copies would arrive with the news already public), else None."""
    if embargo_at is None or send_at is None or embargo_at >= send_at:
        return None
    return (
        f"embargo {embargo_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC is earlier than send_at "
        f"{send_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: move the embargo later or send earlier"
    )
