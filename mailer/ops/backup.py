"""Backups and retention: ``mailer db backup FILE`` and ``mailer purge``.

SQLite is copied with its online backup API (``sqlite3.Connection.backup``): a
consistent copy while ``mailer run`` and ``mailer web`` keep writing (WAL), checked with
``PRAGMA integrity_check`` and renamed into place only when whole. PostgreSQL is backed
up with its own tools: the command says how (``pg_dump``) instead of half-doing it.

Restoring a copy taken before a release was sent is detected by the send fence in
``paths.data_dir`` (see README: backups): keep that folder out of database backups.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from mailer.domain.errors import InputError, StoreError
from mailer.runtime import Runtime
from mailer.store import audit
from mailer.store import retention as retention_store
from mailer.store.db import transaction

_AGE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_age(value: str) -> timedelta:
    """``90d``, ``36h`` or ``2w`` as a timedelta; InputError otherwise (or for zero)."""
    found = _AGE.match(value)
    if found is None or int(found.group(1)) == 0:
        raise InputError(f"--older-than {value!r}: give a number of days, hours or weeks, e.g. 90d, 36h, 2w")
    return int(found.group(1)) * _UNITS[found.group(2)]


def pg_dump_advice(engine: Engine, target: Path) -> str:
    """The command that backs up this PostgreSQL database (password left out)."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=True)
    return (
        f"PostgreSQL is backed up with its own tools: pg_dump --format=custom --file {target} '{url}' "
        "(restore with pg_restore --clean --dbname ...; give the password in PGPASSWORD or ~/.pgpass)"
    )


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    pages: int


def backup_sqlite(engine: Engine, target: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the SQLite database of ``engine`` to ``target`` with the online backup API.

    Raises InputError for PostgreSQL (with the pg_dump advice), an existing ``target``
    without ``overwrite``, or an unwritable place; StoreError when the copy fails its
    integrity check.
    """
    if engine.dialect.name != "sqlite":
        raise InputError(pg_dump_advice(engine, target))
    source = engine.url.database
    if not source or source == ":memory:":
        raise InputError("database.url: an in-memory database cannot be backed up")
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists: pass --overwrite to replace it")
    if target.resolve() == Path(source).resolve():
        raise InputError(f"{target} is the database itself")
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        part.unlink(missing_ok=True)
        src = sqlite3.connect(source, timeout=30)
        dst = sqlite3.connect(part)
        try:
            # All pages in one step: one read transaction, a consistent snapshot. In WAL
            # mode (the embedded default) writers go on meanwhile; copying in several steps
            # instead restarts from scratch whenever another connection writes between two
            # steps, and never finished under a steady writer.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
            src.close()
        if check != "ok":
            raise StoreError(f"the backup copy failed its integrity check: {check}")
        os.chmod(part, 0o600)
        part.replace(target)
    except sqlite3.Error as exc:
        part.unlink(missing_ok=True)
        raise StoreError(f"backup failed: {exc}") from exc
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
    return BackupResult(target, target.stat().st_size, pages)


@dataclass(frozen=True)
class Purged:
    before: datetime
    counts: dict[str, int]
    dry_run: bool


def purge(rt: Runtime, older_than: timedelta, *, actor: str, dry_run: bool = False) -> Purged:
    """Writes (unless ``dry_run``): empty the stored raw texts older than ``older_than``
    (:mod:`mailer.store.retention`), audited as ``purge``."""
    now = rt.clock()
    before = now - older_than
    with transaction(rt.sessions) as session:
        if dry_run:
            return Purged(before, retention_store.count_raw_before(session, before), True)
        counts = retention_store.purge_raw_before(session, before)
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        audit.record(
            session, actor=actor, action="purge", target=f"raw texts before {before:%Y-%m-%d}", detail=detail, now=now
        )
    return Purged(before, counts, False)
