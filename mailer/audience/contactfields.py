"""The fields of a contact as one CSV row carries them: column names, validation, and the
formula mark our export puts before a cell.

:func:`parse_row` turns the cells of one row into a :class:`ParsedRow` or raises
InputError naming the column. Names, addresses and the other known columns refuse every
control character, U+2028/U+2029 and bidi overrides; free attributes refuse all but TAB
(issue 12, item 18: they used to fail only at send, in a header).
"""

from __future__ import annotations

import json
import re
import unicodedata
import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mailer.domain.addresses import normalize_email
from mailer.domain.errors import InputError
from mailer.domain.states import DEFAULT_OUTLET_TYPES

KNOWN_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "outlet",
    "outlet_type",
    "beats",
    "region",
    "country",
    "language",
    "timezone",
    "tags",
)
#: Yes/no columns stored on the contact (not exported: a re-import without them keeps them).
#: ``embargo_ok``: "false" leaves the contact out of embargoed releases.
FLAG_COLUMNS = ("embargo_ok",)
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})
_ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "firstname": "first_name",
    "first": "first_name",
    "given_name": "first_name",
    "lastname": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "beat": "beats",
    "tag": "tags",
    "time_zone": "timezone",
    "tz": "timezone",
    # common headers of media-database and CRM exports
    "e_mail_address": "email",
    "email_addr": "email",
    "publication": "outlet",
    "media_outlet": "outlet",
    "outlet_name": "outlet",
    "media_type": "outlet_type",
    "beats_topics": "beats",
    "topics": "beats",
    "state/region": "region",
}
# Refused in names, addresses and the other known columns: every C0 control (TAB too),
# DEL, the C1 controls (U+0085 NEL among them), U+2028/U+2029 (line breaks to some
# parsers and MUAs) and the bidi embedding/override/isolate controls (spoofed names).
# They would fail only at send, in a header (issue 12, item 18): refuse them at import.
FORBIDDEN_IN_FIELD = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Free attributes may hold a TAB; CR, LF, NUL and the rest stay out.
FORBIDDEN_IN_ATTRIBUTE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# What :func:`neutralize` puts before a cell; removed again on import (round trip).
_NEUTRALIZED = re.compile(r"'(?=[=+\-@\t\r])")
#: The column older exports put every free attribute in, as one JSON object.
LEGACY_ATTRIBUTES_COLUMN = "attributes"
_LABEL_SPLIT = re.compile(r"[|;,]")


@dataclass(frozen=True)
class ParsedRow:
    line: int
    email: str
    values: dict[str, Any]  # columns present in the file → cleaned value (None when empty)
    beats: list[str] | None  # None: the cell was empty (or there is no such column)
    tags: list[str] | None
    attributes: dict[str, str]
    blank_attributes: frozenset[str] = frozenset()  # attribute columns whose cell was empty


def neutralize(cell: str) -> str:
    """Make a cell safe to open in a spreadsheet: formulas become plain text (OWASP)."""
    if cell and cell[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def header_key(raw: str) -> str:
    """A header cell as a column key: lower-case, spaces and dashes as ``_`` ("E-mail
    Address" → ``e_mail_address``), known aliases resolved to their column (``email``)."""
    key = re.sub(r"[\s\-]+", "_", raw.strip().lstrip("\ufeff").lower())
    return _ALIASES.get(key, key)


def labels(value: str) -> list[str]:
    """Beats or tags from one cell: split on ``|``, ``;`` or ``,``, lower-cased, spaces as ``-``."""
    out: list[str] = []
    for part in _LABEL_SPLIT.split(value):
        label = re.sub(r"\s+", "-", part.strip().lower())
        if label and label not in out:
            out.append(label[:64])
    return out


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def refuse_controls(column: str, value: str, pattern: re.Pattern[str]) -> None:
    """InputError naming ``column`` and the character when ``value`` holds one of ``pattern``."""
    found = pattern.search(value)
    if found is not None:
        char = found.group()
        name = unicodedata.name(char, "control character")
        raise InputError(
            f"{column}: U+{ord(char):04X} ({name}) is not allowed: line breaks and control characters are refused"
        )


def unneutralize(cell: str) -> str:
    """Undo :func:`neutralize`: a ``'`` before ``= + - @``, TAB or CR is our export's mark."""
    return cell[1:] if _NEUTRALIZED.match(cell) else cell


def clean_field(column: str, value: str, *, outlet_types: Collection[str] = DEFAULT_OUTLET_TYPES) -> Any:
    """One known column's cell (not email, beats or tags) cleaned as stored; None when
    empty. InputError naming the column for a bad value."""
    refuse_controls(column, value, FORBIDDEN_IN_FIELD)
    value = value.strip()
    if not value:
        return None
    if column == "outlet_type":
        low = value.lower()
        if low not in outlet_types:
            allowed = ", ".join(outlet_types)
            raise InputError(f"outlet_type {value!r}: must be one of {allowed} (see [contacts] outlet_types)")
        return low
    if column == "timezone":
        if value not in _timezones():
            raise InputError(f"timezone {value!r}: not an IANA time zone (e.g. Europe/London)")
        return value
    if column in ("region", "language"):
        return value.lower()[:64]
    if column == "country":
        if not re.fullmatch(r"[A-Za-z]{2,3}", value):
            raise InputError(f"country {value!r}: use a 2-letter ISO code")
        return value.upper()
    return value[:200]


def parse_row(
    line: int,
    header: list[str],
    cells: list[str],
    *,
    blank_clears: bool = False,
    outlet_types: Collection[str] = DEFAULT_OUTLET_TYPES,
) -> ParsedRow:
    """Validate one data row against the header; raises InputError with the reason.

    Our export's formula mark (a ``'`` before ``= + - @``) is removed first. An empty
    beats or tags cell gives None (keep what is stored) unless ``blank_clears``.
    """
    if len(cells) > len(header):
        raise InputError(f"{len(cells)} fields but the header has {len(header)}")
    values: dict[str, Any] = {}
    beats: list[str] | None = None
    tags: list[str] | None = None
    attributes: dict[str, str] = {}
    blank: set[str] = set()
    email = ""
    for key, raw in zip(header, cells, strict=False):
        cell = unneutralize(raw)
        if key == "email":
            refuse_controls("email", cell, FORBIDDEN_IN_FIELD)
            email = normalize_email(cell)
        elif key in ("beats", "tags"):
            refuse_controls(key, cell, FORBIDDEN_IN_FIELD)
            found = labels(cell) if cell.strip() or blank_clears else None
            if key == "beats":
                beats = found
            else:
                tags = found
        elif key in KNOWN_COLUMNS:
            values[key] = clean_field(key, cell, outlet_types=outlet_types)
        elif key in FLAG_COLUMNS:
            values[key] = flag(key, cell)
        elif key == LEGACY_ATTRIBUTES_COLUMN and cell.strip().startswith("{"):
            attributes.update(_legacy_attributes(cell))
        elif key:
            refuse_controls(key, cell, FORBIDDEN_IN_ATTRIBUTE)
            if cell.strip():
                attributes[key] = cell.strip()
            else:
                blank.add(key)
    if not email:
        raise InputError("email is empty")
    return ParsedRow(line, email, values, beats, tags, attributes, frozenset(blank))


def flag(column: str, cell: str) -> bool | None:
    """A yes/no cell: true/yes/1 or false/no/0 (any case); None when empty."""
    value = cell.strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(f"{column} {cell.strip()!r}: expected true or false")


def _legacy_attributes(cell: str) -> dict[str, str]:
    """The free attributes of an older export's one JSON ``attributes`` cell."""
    try:
        data = json.loads(cell)
    except json.JSONDecodeError as exc:
        raise InputError(f"attributes: not a JSON object ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise InputError("attributes: not a JSON object")
    out: dict[str, str] = {}
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        refuse_controls(key, key + text, FORBIDDEN_IN_ATTRIBUTE)
        name = header_key(key)
        if name and name not in KNOWN_COLUMNS and text.strip():
            out[name] = text.strip()
    return out
