"""Suppressions from a CSV file: ``mailer suppressions import FILE`` and the staff
page's upload share :func:`import_suppressions`.

The file is read like a contact import (encoding decided per file, ``,`` ``;`` or TAB):
a header naming an ``email`` column (also ``address``, ``domain``, ``pattern``;
``reason``, ``scope`` and ``note`` columns are optional), or a bare list with one address
or domain form a line. Our own export (``suppressions export``) imports again: an
erased row (empty email, its ``email_hash``) is suppressed by the hash. Each bad line is
reported with its number and reason and never stops the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from mailer.audience.contactfields import unneutralize
from mailer.audience.csvinput import detect_encoding, read_rows
from mailer.audience.suppressions import check_scope, suppress
from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason
from mailer.store import suppressions as suppression_store

_EMAIL_HEADERS = {"email", "e-mail", "e_mail", "email_address", "address", "domain", "pattern"}
_HASH = re.compile(r"[0-9a-f]{64}")
MAX_REPORTED = 10_000


@dataclass
class SuppressionImport:
    """What one import did: ``added`` new suppressions, ``existing`` already there,
    ``rejected`` (line, reason)."""

    added: int = 0
    existing: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "existing": self.existing,
            "rejected": [{"line": line, "reason": reason} for line, reason in self.rejected],
        }


def _reason(value: str, default: SuppressionReason) -> SuppressionReason:
    if not value.strip():
        return default
    try:
        return SuppressionReason(value.strip().lower())
    except ValueError:
        raise InputError(f"reason {value!r}: not one of {', '.join(r.value for r in SuppressionReason)}") from None


def import_suppressions(
    session: Session,
    path: Path,
    *,
    reason: SuppressionReason = SuppressionReason.MANUAL,
    scope: str = GLOBAL_SCOPE,
    actor: str,
    now: datetime,
) -> SuppressionImport:
    """Writes: suppress every address or domain form in the CSV file ``path`` (in the
    caller's transaction). ``reason`` and ``scope`` apply where the file has no such
    column or an empty cell. Raises InputError only when the file as a whole is unusable."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    result = SuppressionImport()
    with path.open("rb") as fh:
        rows = read_rows(fh, detect_encoding(path))
        _, header_cells, _ = next(rows)
        header = [unneutralize(h).strip().lstrip("\ufeff").lower() for h in header_cells or []]
        col = next((i for i, h in enumerate(header) if h in _EMAIL_HEADERS), None)
        data_rows: Any = rows
        if col is None:
            # No header: a bare list, whose first line is data too.
            col, header = 0, []
            data_rows = _prepend((1, header_cells, None), rows)
        where = {name: header.index(name) for name in ("reason", "scope", "note", "email_hash") if name in header}
        for line, cells, error in data_rows:
            if error is not None or cells is None:
                _reject(result, line, error or "unreadable line")
                continue
            if not any(c.strip() for c in cells):
                continue
            try:
                _one(session, cells, col, where, result, reason=reason, scope=scope, actor=actor, now=now)
            except (InputError, NotFoundError) as exc:
                _reject(result, line, str(exc))
    return result


def _prepend(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


def _reject(result: SuppressionImport, line: int, reason: str) -> None:
    if len(result.rejected) < MAX_REPORTED:
        result.rejected.append((line, reason))


def _cell(cells: list[str], index: int | None) -> str:
    return unneutralize(cells[index]).strip() if index is not None and index < len(cells) else ""


def _one(
    session: Session,
    cells: list[str],
    col: int,
    where: dict[str, int],
    result: SuppressionImport,
    *,
    reason: SuppressionReason,
    scope: str,
    actor: str,
    now: datetime,
) -> None:
    target = _cell(cells, col)
    chosen = _reason(_cell(cells, where.get("reason")), reason)
    row_scope = _cell(cells, where.get("scope")) or scope
    note = _cell(cells, where.get("note")) or None
    source = f"import by {actor}"
    if not target:
        hashed = _cell(cells, where.get("email_hash")).lower()
        if not _HASH.fullmatch(hashed):
            raise InputError("no address or domain on this line")
        # An erased address from our export: only its hash is left.
        check_scope(session, row_scope)
        added = suppression_store.suppress_hash(
            session, hashed, email=None, reason=chosen, source=source, now=now, scope=row_scope
        )
    else:
        if chosen is SuppressionReason.ERASED:
            chosen = SuppressionReason.MANUAL
        # suppress() checks the form and the scope before it writes: a bad line writes nothing.
        added = suppress(
            session, target, reason=chosen, source=source, now=now, scope=row_scope, actor=actor, note=note
        )
    if added:
        result.added += 1
    else:
        result.existing += 1
