"""Times people type (issue 21): named zones, offsets, DST gaps and repeats, past times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailer.domain.errors import InputError
from mailer.domain.when import format_in_zone, parse_when, require_future, zone


def test_named_zone_and_offset_give_the_same_instant() -> None:
    """`2026-12-01 09:00 America/New_York` is 14:00 UTC, like the ISO form with -05:00."""
    named = parse_when("2026-12-01 09:00 America/New_York", "--at")
    iso = parse_when("2026-12-01T09:00:00-05:00", "--at")
    assert named == iso and named.astimezone(UTC) == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert parse_when("2026-12-01T09:00 Europe/Paris", "x").astimezone(UTC).hour == 8
    assert parse_when("2026-12-01 09:00 UTC", "x") == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_time_without_zone_needs_a_default_zone() -> None:
    """A bare wall-clock time is refused naming the field, unless the form's zone reads it."""
    with pytest.raises(InputError, match=r"^send_at: 2026-12-01 09:00 has no time zone"):
        parse_when("2026-12-01 09:00", "send_at")
    assert parse_when("2026-12-01 09:00", "send_at", default_zone="Asia/Tokyo").utcoffset() == timedelta(hours=9)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-03-08 02:30 America/New_York", "does not exist in America/New_York"),
        ("2026-11-01 01:30 America/New_York", "happens twice in America/New_York"),
        ("2026-12-01 09:00 Mars/Olympus", "'Mars/Olympus' is not a time zone"),
        ("tomorrow at nine", "is not a date and time"),
        ("2026-02-30 09:00 UTC", "is not a date and time"),
    ],
)
def test_bad_times_are_one_clear_error(text: str, problem: str) -> None:
    """Skipped and repeated wall-clock times, unknown zones and nonsense say what is wrong."""
    with pytest.raises(InputError, match=problem):
        parse_when(text, "--at")


def test_past_time_is_refused_with_how_long_ago() -> None:
    """A time before now is refused, saying how long ago and what to do instead."""
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(InputError, match=r"is in the past \(30 minutes ago.*use --now"):
        require_future(now - timedelta(minutes=30), now, "--at", hint="use --now")
    assert require_future(now, now, "--at") == now


def test_format_in_zone_names_the_zone() -> None:
    """Times shown to a user carry their zone's abbreviation and name; unknown zones fall back to UTC."""
    at = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert format_in_zone(at, "America/New_York") == "2026-12-01 09:00 EST (America/New_York)"
    assert format_in_zone(at, None) == "2026-12-01 14:00 UTC"
    assert format_in_zone(at, "Nowhere/Else") == "2026-12-01 14:00 UTC"
    assert zone("utc").key == "UTC"
