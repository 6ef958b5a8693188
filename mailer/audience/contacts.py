"""Contact CSV import and export.

Import streams the file (bounded memory at any size) and writes in batches inside one
transaction: either every good row lands or, if the run dies, none does. A large file is
parsed in a second process while this one writes (:mod:`mailer.audience.importfeed`). A bad row is
reported with its line number and never stops the good ones. An import never touches
suppressions, so it cannot lift one.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session, sessionmaker

from mailer import store
from mailer.audience.contactfields import KNOWN_COLUMNS, ParsedRow, header_key
from mailer.audience.contactfields import neutralize as neutralize
from mailer.audience.csvinput import Encoding, detect_encoding, forced_encoding
from mailer.audience.importfeed import BATCH as BATCH
from mailer.audience.importfeed import SKIP_COLUMN as SKIP_COLUMN
from mailer.audience.importfeed import Batch, FeedOptions, Prepared, batches
from mailer.audience.importfeed import apply_mapping as apply_mapping
from mailer.domain.addresses import normalize_email as normalize_email
from mailer.domain.addresses import variant_reason
from mailer.domain.errors import InputError
from mailer.domain.states import DEFAULT_OUTLET_TYPES
from mailer.store import bulk, contact_search
from mailer.store import contacts as contact_store
from mailer.store.db import transaction
from mailer.store.tables import ContactBeat, ContactTag

SLUG = re.compile(r"[a-z0-9][a-z0-9\-_]{0,63}")
MAX_REPORTED_REJECTIONS = 100_000
#: From this file size on, an import into an empty contacts table (SQLite) builds the
#: sort and facet indexes once at the end (:func:`mailer.store.bulk.first_load`).
FIRST_LOAD_MIN_BYTES = 4 << 20
#: What an import does after the last row is read (see ``import_csv``'s ``phase``).
INDEXING = "building the contact indexes"
SAVING = "saving"


@dataclass
class Rejection:
    line: int
    reason: str


@dataclass
class ImportResult:
    """Counts of one import; ``warnings`` are lines imported as they are but worth a look
    (an address that may be another's Gmail dot or ``+tag`` variant), ``encoding`` what
    the file was read as."""

    accepted: int = 0
    updated: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejected_total: int = 0
    warnings: list[Rejection] = field(default_factory=list)
    encoding: str = ""

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_REPORTED_REJECTIONS:
            self.rejected.append(Rejection(line, reason))

    def warn(self, line: int, reason: str) -> None:
        if len(self.warnings) < MAX_REPORTED_REJECTIONS:
            self.warnings.append(Rejection(line, reason))

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accepted": self.accepted,
            "updated": self.updated,
            "rejected": [{"line": r.line, "reason": r.reason} for r in self.rejected],
        }
        if self.rejected_total > len(self.rejected):
            out["rejected_total"] = self.rejected_total
        if self.warnings:
            out["warnings"] = [{"line": w.line, "warning": w.reason} for w in self.warnings]
        return out


Progress = Callable[[int, int], None]


def check_slug(slug: str, what: str = "slug") -> str:
    """Return ``slug`` if it is lower-case letters, digits, ``-`` or ``_``; else InputError."""
    if not SLUG.fullmatch(slug):
        raise InputError(f"{what} {slug!r}: use lower-case letters, digits, '-' and '_' (max 64)")
    return slug


# --- importing -------------------------------------------------------------------------


def import_csv(
    factory: sessionmaker[Session],
    path: Path,
    *,
    list_slug: str,
    now: datetime,
    progress: Progress | None = None,
    encoding: str | None = None,
    blank_clears: bool = False,
    outlet_types: Collection[str] = DEFAULT_OUTLET_TYPES,
    mapping: dict[str, str] | None = None,
    parse_in_child: bool | None = None,
    phase: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import ``path`` into the contacts and the list ``list_slug`` (created when missing).

    ``encoding`` forces a codec; by default it is decided per file
    (:func:`mailer.audience.csvinput.detect_encoding`). A row with bytes the encoding cannot read,
    a control character or line separator in a field, or a bad value is rejected alone.
    An empty cell keeps the stored value of an existing contact unless ``blank_clears``.
    ``outlet_types`` are the accepted outlet types (``[contacts] outlet_types``).
    ``mapping`` renames header columns before they are read (the browser's column-mapping
    step: file header → a known column, an attribute name, or "" to skip the column).
    ``parse_in_child`` parses in a second process (:mod:`mailer.audience.importfeed`;
    by default when the file is large). ``phase`` is told what the import does once the
    file is read: ``"building the contact indexes"`` (a first load), then ``"saving"``.

    Returns counts: ``accepted`` new contacts, ``updated`` existing ones, ``rejected`` rows
    with line and reason, ``warnings`` (likely mailbox variants). Raises InputError only
    when the file as a whole is unusable, ParserFailed when the parsing process fails
    (nothing is imported then).
    """
    check_slug(list_slug, "list")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a CSV file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    chosen: Encoding = forced_encoding(encoding) if encoding else detect_encoding(path)
    total = path.stat().st_size
    batch_id = uuid.uuid4().hex
    result = ImportResult(encoding=chosen.label)
    options = FeedOptions(chosen, blank_clears=blank_clears, outlet_types=frozenset(outlet_types), mapping=mapping)
    feed = batches(path, options, child=parse_in_child)
    try:
        # The file's header is checked before the list is made: an unusable file writes nothing.
        first = next(feed)
    except InputError as exc:
        feed.close()
        raise InputError(f"{path}: {exc}") from exc
    with contextlib.closing(feed), transaction(factory) as session, bulk.import_cache(session):
        mlist = store.ensure_list(session, list_slug, name=None, now=now)
        # a large file into an empty contacts table: indexes built once at the end
        deferred = bulk.first_load(session) if total >= FIRST_LOAD_MIN_BYTES else None
        try:
            for batch in itertools.chain([first], feed):
                for line, reason in batch.rejected:
                    result.reject(line, reason)
                _write_batch(session, batch, mlist.id, batch_id, now, result, blank_clears=blank_clears)
                if progress is not None:
                    progress(min(batch.position, total), total)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
        if deferred is not None:
            if phase is not None:
                phase(INDEXING)
            deferred.rebuild()
        if phase is not None:
            phase(SAVING)
    result.rejected.sort(key=lambda r: r.line)
    result.warnings.sort(key=lambda r: r.line)
    return result


def _flag_variants(session: Session, rows: list[tuple[ParsedRow, Prepared]], result: ImportResult) -> None:
    """Warn about addresses that may reach the same mailbox as another in this batch or
    one already stored (earlier batches of this import included). Bounded memory: a
    variant is found against any form in its batch, and against its plain form stored."""
    in_batch = {r.email for r, _ in rows}
    first: dict[str, ParsedRow] = {}
    plain_of: dict[str, str] = {}
    for row, prepared in rows:
        key = prepared.mailbox
        other = first.setdefault(key, row)
        if other.email != row.email:
            result.warn(row.line, f"{variant_reason(row.email, other.email)} (line {other.line})")
        elif key != row.email and key not in in_batch:
            plain_of[row.email] = key
    if not plain_of:
        return
    stored = {c.email for c in store.find_contacts_by_email(session, sorted(set(plain_of.values())))}
    for row, _ in rows:
        plain = plain_of.get(row.email)
        if plain is not None and plain in stored:
            result.warn(row.line, f"{variant_reason(row.email, plain)} (already stored)")


def _write_batch(
    session: Session,
    batch: Batch,
    list_id: int,
    batch_id: str,
    now: datetime,
    result: ImportResult,
    *,
    blank_clears: bool = False,
) -> None:
    """Writes one batch: new contacts with their labels, search words and sort keys as the
    rows give them (nothing to read back but their ids); existing ones updated, then
    reindexed from what is stored (an empty cell may have kept a stored value)."""
    if not batch.rows:
        return
    _flag_variants(session, batch.rows, result)
    # The same address twice in one file: the first row wins, later ones are reported.
    first_line: dict[str, int] = {}
    unique: list[tuple[int, ParsedRow, Prepared]] = []
    for index, (row, prepared) in enumerate(batch.rows):
        if row.email in first_line:
            result.reject(row.line, f"duplicate of line {first_line[row.email]} ({row.email})")
        else:
            first_line[row.email] = row.line
            unique.append((index, row, prepared))
    existing = {r.email: r for r in store.find_contacts_by_email(session, [r.email for _, r, _ in unique])}
    inserts: list[dict[str, Any]] = []
    added: list[tuple[int, ParsedRow]] = []
    updates: list[dict[str, Any]] = []
    changed: list[tuple[int, ParsedRow]] = []
    for index, row, prepared in unique:
        found = existing.get(row.email)
        if found is None:
            data = dict(row.values)
            data.update(
                email=row.email,
                email_hash=prepared.email_hash,
                attributes=row.attributes,
                import_line=row.line,
                sort_name=prepared.sort_name,
                sort_outlet=prepared.sort_outlet,
            )
            inserts.append(data)
            added.append((index, row))
        elif found.import_batch == batch_id:
            result.reject(row.line, f"duplicate of line {found.import_line} ({row.email})")
        else:
            data = {k: v for k, v in row.values.items() if v is not None or blank_clears}
            data.update(import_batch=batch_id, import_line=row.line, updated_at=now, id=found.id)
            cleared = row.blank_attributes if blank_clears else frozenset()
            if row.attributes or cleared:
                data["attributes"] = (row.attributes, cleared)  # merged below
            updates.append(data)
            changed.append((found.id, row))
    ids = store.insert_contacts(session, inserts, same={"import_batch": batch_id, "created_at": now, "updated_at": now})
    new = [(ids[row.email], row) for _, row in added]
    store.add_contact_labels(session, ContactBeat, ((cid, b) for cid, row in new for b in row.beats or ()))
    store.add_contact_labels(session, ContactTag, ((cid, t) for cid, row in new for t in row.tags or ()))
    # the batch's words come sorted by (term, row) and new rows got ids in row order: the
    # pairs are in key order; built without a Python step per word (~15 a contact)
    id_of = [0] * len(batch.rows)
    for (index, _), (cid, _) in zip(added, new, strict=True):
        id_of[index] = cid
    owner_ids = list(map(id_of.__getitem__, batch.owners))
    pairs = zip(batch.terms, owner_ids, strict=True)
    contact_search.add_terms(session, list(pairs if all(id_of) else itertools.compress(pairs, owner_ids)))
    _merge_attributes(session, updates)
    store.update_contacts(session, updates)
    store.replace_contact_labels(session, ContactBeat, {cid: r.beats for cid, r in changed if r.beats is not None})
    store.replace_contact_labels(session, ContactTag, {cid: r.tags for cid, r in changed if r.tags is not None})
    contact_search.reindex_contacts(session, [cid for cid, _ in changed])
    store.add_list_members(session, list_id, [cid for cid, _ in new], now, new=True)
    store.add_list_members(session, list_id, [cid for cid, _ in changed], now)
    result.accepted += len(inserts)
    result.updated += len(updates)


def _merge_attributes(session: Session, updates: list[dict[str, Any]]) -> None:
    with_attrs = [u for u in updates if "attributes" in u]
    if not with_attrs:
        return
    current = store.contact_attributes(session, [u["id"] for u in with_attrs])
    for upd in with_attrs:
        given, cleared = upd["attributes"]
        merged = {k: v for k, v in current.get(upd["id"], {}).items() if k not in cleared}
        upd["attributes"] = {**merged, **given}


# --- exporting -------------------------------------------------------------------------


def _attribute_cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def export_csv(factory: sessionmaker[Session], out: IO[str], *, list_slug: str | None = None, bom: bool = False) -> int:
    """Write live contacts as CSV (formula-safe) to ``out``: the known columns, then one
    column per free attribute, so that importing the file again changes nothing. ``bom``
    starts the file with a UTF-8 byte-order mark (U+FEFF), without which Excel reads UTF-8
    as Windows-1252 (mojibake); the import skips it. Returns the number of rows."""
    if bom:
        out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    count = 0
    with transaction(factory) as session:
        if list_slug is not None:
            store.get_list(session, list_slug)
        keys = contact_store.contact_attribute_keys(session, list_slug=list_slug)
        # A key that would read back as a known column ("E-mail") stays out: it would clobber it.
        extra = [k for k in keys if header_key(k) not in KNOWN_COLUMNS]
        rows = store.iter_contacts(session, list_slug=list_slug)
        writer.writerow([*KNOWN_COLUMNS, *(neutralize(k) for k in extra)])
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
                *(_attribute_cell(contact.attributes.get(k)) for k in extra),
            ]
            writer.writerow([neutralize(c) for c in cells])
            count += 1
    return count
