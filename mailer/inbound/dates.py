"""The return date an out-of-office reply gives, in English, German, French or Spanish.
No I/O; the date the reply was received anchors the year.

"back on 3 December", "returning December 3rd", "until Monday, 3rd of December 2026",
"bis zum 03.12.", "ab dem 4. Dezember wieder", "de retour le 3 décembre", "jusqu'au
1er décembre", "hasta el 3 de diciembre", "a partir del 4 de diciembre", "2026-12-03".

How a date is chosen: the first date written shortly after a return word ("back",
"return", "until", "zurück", "bis", "ab", "retour", "jusqu'", "hasta", "regreso", "a partir
de" ...); failing that, the first date in the text that is not in the past. A date
without a year is the next such day on or after the reply (a week of slack for a reply
sent late). ``03/12`` is read day first unless that cannot be a date, or unless reading
it month first gives the nearer future day: English mail writes both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan januar jänner janvier janv enero ene",
        "february feb februar février fevrier févr fevr febrero",
        "march mar märz maerz mars marzo",
        "april apr avril avr abril abr",
        "may mai mayo",
        "june jun juni juin junio",
        "july jul juli juillet juil julio",
        "august aug août aout agosto ago",
        "september sep sept septembre septiembre setiembre",
        "october oct oktober okt octobre octubre",
        "november nov novembre noviembre",
        "december dec dezember dez décembre decembre déc diciembre dic",
    ),
    1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number

# Longest names first, so "sept" is not read as "sep" + "t".
_MONTH = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
_ORDINAL = r"(?:st|nd|rd|th|er|re|e|º|°|o|\.)?"

_DAY_MONTH = re.compile(
    rf"\b(?P<day>[0-3]?\d){_ORDINAL}\s*(?:of\s+|de\s+)?(?P<month>{_MONTH})\b\.?(?:,?\s*(?:de\s+)?(?P<year>\d{{4}}))?",
    re.IGNORECASE,
)
_MONTH_DAY = re.compile(
    rf"\b(?P<month>{_MONTH})\b\.?\s+(?P<day>[0-3]?\d){_ORDINAL}(?![\d:])(?:,?\s*(?P<year>\d{{4}}))?",
    re.IGNORECASE,
)
_ISO = re.compile(r"\b(?P<year>\d{4})-(?P<month>[01]?\d)-(?P<day>[0-3]?\d)\b")
_NUMERIC = re.compile(r"(?<![\d./])(?P<a>[0-3]?\d)(?P<sep>[./])(?P<b>[01]?\d)(?:(?P=sep)(?P<year>\d{2,4})?)?(?![\d/])")

#: words after which the return date is written
_RETURN_WORDS = re.compile(
    r"\b(?:back|return(?:s|ing)?|returns? to the office|until|till|through|in the office (?:again )?(?:on|from)"
    r"|available (?:again )?(?:on|from)|reachable (?:again )?(?:on|from)|from"
    r"|zurück|wieder (?:da|erreichbar|im büro)|bis(?: zum| einschließlich)?|ab(?: dem)?|erreichbar ab"
    r"|de retour|retour|jusqu['’]\s*(?:au|à)|à partir du|à compter du|à nouveau"
    r"|hasta(?: el)?|regreso|regresaré|vuelvo|volveré|de vuelta|a partir del?|estaré de vuelta)\b",
    re.IGNORECASE,
)
#: what joins the two ends of a date range
_RANGE = re.compile(
    r"[ \t]*(?:-|–|—|to|until|till|through|thru|and|bis(?: zum| einschließlich)?|au|jusqu['’][ \t]*au|al|hasta(?: el)?"
    r"|y el)[ \t]*(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,?[ \t]*|(?:the|le|el|den)[ \t]+)?",
    re.IGNORECASE,
)
#: characters after a return word within which its date must start
_WINDOW = 60
#: a date without a year may lie this far in the past and still mean this year
_SLACK = timedelta(days=7)


@dataclass(frozen=True)
class FoundDate:
    """A date read from the text, and the words it was read from (the evidence)."""

    day: date
    phrase: str


def return_date(text: str, received: date) -> FoundDate | None:
    """The return date ``text`` gives (see the module docstring), or None."""
    dates = _dates(text, received)
    for anchor in _RETURN_WORDS.finditer(text):
        for start, end, day in dates:
            if anchor.end() <= start <= anchor.end() + _WINDOW:
                end, day = _range_end(text, dates, end, day)
                return FoundDate(day, " ".join(text[anchor.start() : end].split()))
    for start, end, day in dates:
        if day >= received - _SLACK:
            end, day = _range_end(text, dates, end, day)
            return FoundDate(day, " ".join(text[start:end].split()))
    return None


def _dates(text: str, received: date) -> list[tuple[int, int, date]]:
    """Every date written in ``text``: (start, end, day), by position; overlapping readings
    of the same words (``3 December`` and ``December 3``) keep the first."""
    found: list[tuple[int, int, date]] = []
    for pattern in (_ISO, _DAY_MONTH, _MONTH_DAY, _NUMERIC):
        for match in pattern.finditer(text):
            day = _read(match, pattern, received)
            if day is not None:
                found.append((match.start(), match.end(), day))
    found.sort()
    kept: list[tuple[int, int, date]] = []
    for entry in found:
        if not kept or entry[0] >= kept[-1][1]:
            kept.append(entry)
    return kept


def _range_end(text: str, dates: list[tuple[int, int, date]], end: int, day: date) -> tuple[int, date]:
    """For "24 November to 2 December" (and its German, French, Spanish forms) the end of
    the range: the day after the connector, when it is later; else ``(end, day)``."""
    connector = _RANGE.match(text, end)
    if connector is None:
        return end, day
    for start, next_end, next_day in dates:
        if start == connector.end() and next_day >= day:
            return next_end, next_day
    return end, day


def _read(match: re.Match[str], pattern: re.Pattern[str], received: date) -> date | None:
    parts = match.groupdict()
    year = _year(parts.get("year"))
    if pattern is _NUMERIC:
        a, b = int(parts["a"]), int(parts["b"])
        if parts["sep"] == ".":
            return _make(year, b, a, received)
        day_first = _make(year, b, a, received)
        month_first = _make(year, a, b, received)
        if day_first is None or month_first is None:
            return day_first or month_first
        return min(day_first, month_first, key=lambda d: abs((d - received).days))
    month = int(parts["month"]) if pattern is _ISO else _MONTHS.get(parts["month"].lower().rstrip("."))
    if month is None:
        return None
    return _make(year, month, int(parts["day"]), received)


def _year(text: str | None) -> int | None:
    if not text:
        return None
    value = int(text)
    return value + 2000 if value < 100 else value


def _make(year: int | None, month: int, day: int, received: date) -> date | None:
    """The date, the year chosen when not given (on or after ``received`` less the slack)."""
    try:
        if year is not None:
            return date(year, month, day)
        this_year = date(received.year, month, day)
    except ValueError:
        return None
    if this_year < received - _SLACK:
        try:
            return date(received.year + 1, month, day)
        except ValueError:  # 29 February
            return None
    return this_year
