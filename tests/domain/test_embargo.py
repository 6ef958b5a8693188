"""Embargo times: parsed from named zones and offsets, shown in each reader's zone and UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailer.domain.embargo import (
    check_embargo_after_send,
    embargo_text,
    parse_embargo,
    subject_prefix,
)
from mailer.domain.errors import InputError

LIFT = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_a_named_zone_is_kept_with_the_instant() -> None:
    """ "2026-12-01 09:00 America/New_York" is 14:00 UTC, written in New York."""
    embargo = parse_embargo("2026-12-01 09:00 America/New_York")
    assert embargo is not None
    assert (embargo.at, embargo.zone) == (LIFT, "America/New_York")
    assert embargo.local().isoformat() == "2026-12-01T09:00:00-05:00"


@pytest.mark.parametrize(
    "value",
    ["2026-12-01T09:00:00-05:00", datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))],
)
def test_an_offset_string_or_toml_datetime_is_accepted(value: object) -> None:
    """ISO 8601 with an offset (a string or a TOML datetime) keeps the offset as its zone."""
    embargo = parse_embargo(value)
    assert embargo is not None and (embargo.at, embargo.zone) == (LIFT, "-05:00")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2026-12-01 09:00 Mars/Olympus_Mons", "not an IANA time zone"),
        ("2026-12-01T09:00:00", "has no time zone"),
        ("tomorrow morning", "is not a time with a zone"),
        ("2026-03-08 02:30 America/New_York", "daylight-saving gap"),
    ],
)
def test_bad_embargoes_name_the_key_and_the_problem(value: str, says: str) -> None:
    """An unknown zone, a naive time, free text and a time in a DST gap are refused."""
    with pytest.raises(InputError, match=says) as info:
        parse_embargo(value)
    assert str(info.value).startswith("embargo:")


def test_each_reader_sees_their_own_zone_and_utc() -> None:
    """A London reader sees 14:00 GMT, a Tokyo reader the next day 23:00 JST, both with UTC."""
    london = embargo_text(LIFT, "Europe/London", "America/New_York")
    tokyo = embargo_text(LIFT, "Asia/Tokyo", "America/New_York")
    assert london.full == "1 December 2026, 14:00 GMT (Europe/London) / 1 December 2026, 14:00 UTC"
    assert tokyo.full == "1 December 2026, 23:00 JST (Asia/Tokyo) / 1 December 2026, 14:00 UTC"
    assert subject_prefix(tokyo) == "[EMBARGOED until 1 Dec 23:00 JST / 14:00 UTC] "
    late = embargo_text(datetime(2026, 12, 1, 20, 0, tzinfo=UTC), "Asia/Tokyo", "UTC")
    assert late.subject == "2 Dec 05:00 JST / 1 Dec 20:00 UTC"


def test_a_reader_without_a_zone_sees_the_release_zone() -> None:
    """No (or an unknown) contact zone falls back to the zone the embargo was written in."""
    assert embargo_text(LIFT, None, "America/New_York").local == "1 December 2026, 09:00 EST (America/New_York)"
    assert embargo_text(LIFT, "Nowhere/Special", "America/New_York").local.startswith("1 December 2026, 09:00 EST")
    assert embargo_text(LIFT, None, "UTC").full == "1 December 2026, 14:00 UTC"


def test_an_embargo_before_the_send_time_is_a_problem() -> None:
    """An embargo lifting before send_at is refused; at or after it, or without either, it fits."""
    assert check_embargo_after_send(LIFT, LIFT + timedelta(hours=1)) is not None
    assert check_embargo_after_send(LIFT, LIFT) is None
    assert check_embargo_after_send(LIFT, None) is None
    assert check_embargo_after_send(None, LIFT) is None
