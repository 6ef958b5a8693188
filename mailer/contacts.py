"""Contact CSV import and export.

Import streams the file (bounded memory at any size) and writes in batches inside one
transaction: either every good row lands or, if the run dies, none does. A bad row is
reported with its line number and never stops the good ones. An import never touches
suppressions, so it cannot lift one.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session, sessionmaker

from mailer import store
from mailer.db import transaction
from mailer.domain import OutletType, email_hash
from mailer.errors import InputError
from mailer.tables import ContactBeat, ContactTag

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
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LABEL_SPLIT = re.compile(r"[|;,]")
SLUG = re.compile(r"[a-z0-9][a-z0-9\-_]{0,63}")
BATCH = 1000
MAX_REPORTED_REJECTIONS = 100_000


@dataclass
class Rejection:
    line: int
    reason: str


@dataclass
class ImportResult:
    accepted: int = 0
    updated: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejected_total: int = 0

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_REPORTED_REJECTIONS:
            self.rejected.append(Rejection(line, reason))

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "updated": self.updated,
            "rejected": [{"line": r.line, "reason": r.reason} for r in self.rejected],
        }
        if self.rejected_total > len(self.rejected):
            out["rejected_total"] = self.rejected_total
        return out


@dataclass(frozen=True)
class ParsedRow:
    line: int
    email: str
    values: dict[str, Any]  # columns present in the file → cleaned value (None when empty)
    beats: list[str] | None
    tags: list[str] | None
    attributes: dict[str, str]


Progress = Callable[[int, int], None]


def check_slug(slug: str, what: str = "slug") -> str:
    """Return ``slug`` if it is lower-case letters, digits, ``-`` or ``_``; else InputError."""
    if not SLUG.fullmatch(slug):
        raise InputError(f"{what} {slug!r}: use lower-case letters, digits, '-' and '_' (max 64)")
    return slug


def normalize_email(raw: str) -> str:
    """The address as stored: validated (no DNS) and lower-cased. Raises InputError."""
    candidate = raw.strip()
    if not candidate:
        raise InputError("email is empty")
    if "<" in candidate or ">" in candidate:
        raise InputError(f"email {candidate!r}: give the bare address, without a display name")
    if _CONTROL.search(candidate):
        raise InputError("email: line breaks and control characters are not allowed")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InputError(f"email {candidate!r}: {exc}") from exc
    return result.normalized.lower()


# --- reading the file ------------------------------------------------------------------


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM or NUL pattern), else Windows-1252.

    Reads the file once in blocks, so it is safe for any size.
    """
    with path.open("rb") as fh:
        head = fh.read(4096)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if head and head.count(b"\x00") > len(head) // 4:
            return "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
        decoder = codecs.getincrementaldecoder("utf-8")()
        block = head
        try:
            while block:
                decoder.decode(block)
                block = fh.read(1 << 20)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8"


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header_key(raw: str) -> str:
    key = re.sub(r"[\s\-]+", "_", raw.strip().lstrip("\ufeff").lower())
    return _ALIASES.get(key, key)


def _labels(value: str) -> list[str]:
    out: list[str] = []
    for part in _LABEL_SPLIT.split(value):
        label = re.sub(r"\s+", "-", part.strip().lower())
        if label and label not in out:
            out.append(label[:64])
    return out


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _clean(column: str, value: str) -> Any:
    value = value.strip()
    if column in ("first_name", "last_name", "outlet") and _CONTROL.search(value):
        raise InputError(f"{column}: line breaks and control characters are not allowed")
    if not value:
        return None
    if column == "outlet_type":
        low = value.lower()
        if low not in {t.value for t in OutletType}:
            allowed = ", ".join(t.value for t in OutletType)
            raise InputError(f"outlet_type {value!r}: must be one of {allowed}")
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


def read_rows(fh: IO[bytes], encoding: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Yield ``(line, header)`` once, then ``(line, cells, None)`` or ``(line, None, error)``."""
    text = io.TextIOWrapper(fh, encoding=encoding, errors="replace", newline="")
    first = text.readline()
    if not first.strip():
        raise InputError("the file is empty or has no header row")
    delimiter = _sniff_delimiter(first)
    reader = csv.reader(_chain(first, text), delimiter=delimiter, strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, None, f"unreadable CSV: {exc}"
            line = reader.line_num + 1
            continue
        yield line, cells, None
        line = reader.line_num + 1


def _chain(first: str, rest: IO[str]) -> Iterator[str]:
    yield first
    yield from rest


def parse_row(line: int, header: list[str], cells: list[str]) -> ParsedRow:
    """Validate one data row against the header; raises InputError with the reason."""
    if len(cells) > len(header):
        raise InputError(f"{len(cells)} fields but the header has {len(header)}")
    values: dict[str, Any] = {}
    beats: list[str] | None = None
    tags: list[str] | None = None
    attributes: dict[str, str] = {}
    email = ""
    for key, cell in zip(header, cells, strict=False):
        if key == "email":
            email = normalize_email(cell)
        elif key == "beats":
            beats = _labels(cell)
        elif key == "tags":
            tags = _labels(cell)
        elif key in KNOWN_COLUMNS:
            values[key] = _clean(key, cell)
        elif key and cell.strip():
            attributes[key] = cell.strip()
    if not email:
        raise InputError("email is empty")
    return ParsedRow(line, email, values, beats, tags, attributes)


# --- importing -------------------------------------------------------------------------


def import_csv(
    factory: sessionmaker[Session],
    path: Path,
    *,
    list_slug: str,
    now: datetime,
    progress: Progress | None = None,
) -> ImportResult:
    """Import ``path`` into the contacts and the list ``list_slug`` (created when missing).

    Returns counts: ``accepted`` new contacts, ``updated`` existing ones, ``rejected`` rows
    with line and reason. Raises InputError only when the file as a whole is unusable.
    """
    check_slug(list_slug, "list")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    encoding = detect_encoding(path)
    total = path.stat().st_size
    batch_id = uuid.uuid4().hex
    result = ImportResult()
    with path.open("rb") as fh, transaction(factory) as session:
        mlist = store.ensure_list(session, list_slug, name=None, now=now)
        rows = read_rows(fh, encoding)
        _, header_cells, _ = next(rows)
        header = [_header_key(h) for h in header_cells or []]
        if "email" not in header:
            raise InputError(f"{path}: no 'email' column in the header row")
        pending: list[ParsedRow] = []
        for line, cells, error in rows:
            if error is not None:
                result.reject(line, error)
            elif cells is None or not any(c.strip() for c in cells):
                continue  # blank lines are not rows
            else:
                try:
                    pending.append(parse_row(line, header, cells))
                except InputError as exc:
                    result.reject(line, str(exc))
            if len(pending) >= BATCH:
                _write_batch(session, pending, mlist.id, batch_id, now, result)
                pending = []
                if progress is not None:
                    progress(min(fh.tell(), total), total)
        _write_batch(session, pending, mlist.id, batch_id, now, result)
        if progress is not None:
            progress(total, total)
    result.rejected.sort(key=lambda r: r.line)
    return result


def _write_batch(
    session: Session,
    rows: list[ParsedRow],
    list_id: int,
    batch_id: str,
    now: datetime,
    result: ImportResult,
) -> None:
    if not rows:
        return
    # The same address twice in one file: the first row wins, later ones are reported.
    first_line: dict[str, int] = {}
    unique: list[ParsedRow] = []
    for row in rows:
        if row.email in first_line:
            result.reject(row.line, f"duplicate of line {first_line[row.email]} ({row.email})")
        else:
            first_line[row.email] = row.line
            unique.append(row)
    existing = {r.email: r for r in store.find_contacts_by_email(session, [r.email for r in unique])}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for row in unique:
        found = existing.get(row.email)
        if found is not None and found.import_batch == batch_id:
            result.reject(row.line, f"duplicate of line {found.import_line} ({row.email})")
            continue
        data = dict(row.values)
        data.update(import_batch=batch_id, import_line=row.line, updated_at=now)
        if found is None:
            data.update(
                email=row.email,
                email_hash=email_hash(row.email),
                attributes=row.attributes,
                created_at=now,
            )
            inserts.append(data)
        else:
            if row.attributes:
                data["attributes"] = row.attributes  # merged below
            data["id"] = found.id
            updates.append(data)
    _merge_attributes(session, updates)
    ids = store.insert_contacts(session, inserts)
    store.update_contacts(session, updates)
    id_of = {**{e: r.id for e, r in existing.items()}, **ids}
    written = {d["email"] for d in inserts} | {e for e, r in existing.items() if r.import_batch != batch_id}
    kept = [r for r in unique if r.email in written]
    store.replace_contact_labels(session, ContactBeat, {id_of[r.email]: r.beats for r in kept if r.beats is not None})
    store.replace_contact_labels(session, ContactTag, {id_of[r.email]: r.tags for r in kept if r.tags is not None})
    store.add_list_members(session, list_id, (id_of[r.email] for r in kept), now)
    result.accepted += len(inserts)
    result.updated += len(updates)


def _merge_attributes(session: Session, updates: list[dict[str, Any]]) -> None:
    with_attrs = [u for u in updates if "attributes" in u]
    if not with_attrs:
        return
    current = store.contact_attributes(session, [u["id"] for u in with_attrs])
    for upd in with_attrs:
        upd["attributes"] = {**current.get(upd["id"], {}), **upd["attributes"]}


# --- exporting -------------------------------------------------------------------------


def neutralize(cell: str) -> str:
    """Make a cell safe to open in a spreadsheet: formulas become plain text (OWASP)."""
    if cell and cell[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def export_csv(factory: sessionmaker[Session], out: IO[str], *, list_slug: str | None = None) -> int:
    """Write live contacts as CSV (formula-safe) to ``out``; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\r\n")
    count = 0
    with transaction(factory) as session:
        if list_slug is not None:
            store.get_list(session, list_slug)
        rows = store.iter_contacts(session, list_slug=list_slug)
        writer.writerow([*KNOWN_COLUMNS, "attributes"])
        for contact, beats, tags in rows:
            cells = [
                contact.email or "",
                contact.first_name or "",
                contact.last_name or "",
                contact.outlet or "",
                contact.outlet_type or "",
                "|".join(beats),
                contact.region or "",
                contact.country or "",
                contact.language or "",
                contact.timezone or "",
                "|".join(tags),
                json.dumps(contact.attributes, ensure_ascii=False, sort_keys=True) if contact.attributes else "",
            ]
            writer.writerow([neutralize(c) for c in cells])
            count += 1
    return count
