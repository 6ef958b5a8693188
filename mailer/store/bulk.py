"""Appending many rows at once, below the ORM and below Core's per-row parameter handling.

A contact import writes some twenty rows per contact (the contact, its search words,
beats, tags, list membership): at a million contacts, SQLAlchemy's per-row work (building
and processing each parameter set) cost more than the database itself. Here each column's
bind processor is looked up once, the values are converted once, and the driver gets them
whole: ``executemany`` of one prepared INSERT on SQLite, ``COPY ... FROM STDIN`` on
PostgreSQL. Plain appends only: no ON CONFLICT, no RETURNING, no defaults filled in (give
every column the table needs). Runs in the session's own transaction.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from mailer.store.tables import Contact

#: the contacts table (typed as a Table for mypy)
_CONTACTS = typing.cast(Table, Contact.__table__)

#: SQLite page cache, in MiB, of a connection while it imports (SQLite's default: 2 MiB).
#: A million contacts touch some 1.5 GB of pages at random places in a dozen indexes; with
#: the default cache every page evicted mid-transaction is written to the WAL and read back.
IMPORT_CACHE_MIB = 256


@contextmanager
def import_cache(session: Session, mib: int | None = None) -> Iterator[None]:
    """On SQLite, a page cache of ``mib`` MiB (default :data:`IMPORT_CACHE_MIB`) for the
    session's connection while the block runs (a bound, not a size: it fills only as the
    import touches pages, so peak memory grows with the file up to this bound and no
    further), the previous size restored after; nothing on PostgreSQL. Changes no
    durability setting."""
    mib = IMPORT_CACHE_MIB if mib is None else mib
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    if raw is None:  # pragma: no cover - a pooled connection always has one
        raise RuntimeError("no database connection")
    previous = raw.execute("PRAGMA cache_size").fetchone()[0]
    raw.execute(f"PRAGMA cache_size={-int(mib) * 1024}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size={int(previous)}")


def append_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    same: Mapping[str, Any] | None = None,
) -> int:
    """Writes: ``rows`` (tuples in the order of ``columns``) into ``table``, each followed
    by the values of ``same`` (columns with one value for every row, converted once);
    returns how many."""
    connection = session.connection()
    dialect = connection.dialect

    def processor(name: str) -> Callable[[Any], Any] | None:
        return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)

    tail = tuple(v if (p := processor(k)) is None else p(v) for k, v in (same or {}).items())
    active = [(i, p) for i, name in enumerate(columns) if (p := processor(name)) is not None]
    if active or tail:
        rows = _converted(rows, active, tail)
    names = [*columns, *(same or {})]
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    name = dialect.identifier_preparer.format_table(table)
    raw = connection.connection.driver_connection
    if raw is None:  # pragma: no cover - a pooled connection always has one
        raise RuntimeError("no database connection")
    count = 0
    if dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY {name} ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    batch = rows if isinstance(rows, list) else list(rows)
    if batch:
        placeholders = ", ".join("?" for _ in names)
        cursor = raw.cursor()
        try:
            cursor.executemany(f"INSERT INTO {name} ({quoted}) VALUES ({placeholders})", batch)
        finally:
            cursor.close()
    return len(batch)


def _converted(
    rows: Iterable[Sequence[Any]], active: list[tuple[int, Callable[[Any], Any]]], tail: tuple[Any, ...]
) -> list[Sequence[Any]]:
    """The rows with the columns that have a bind processor converted, ``tail`` appended."""
    out: list[Sequence[Any]] = []
    for row in rows:
        if active:
            values = list(row)
            for i, convert in active:
                values[i] = convert(values[i])
            out.append((*values, *tail))
        else:
            out.append((*row, *tail))
    return out


class DeferredIndexes:
    """On SQLite, a bulk load into an empty table: the named indexes are dropped at the
    start and built again by :meth:`rebuild` (one sort each, instead of an entry put at a
    random place of a B-tree larger than the page cache for every row). Inside the
    caller's transaction: a failure or a kill before the commit leaves the indexes as
    they were (SQLite's DDL is transactional)."""

    def __init__(self, session: Session, indexes: Sequence[str]) -> None:
        self.session = session
        run = session.connection().exec_driver_sql
        marks = ", ".join("?" for _ in indexes)
        found = run(f"SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND name IN ({marks})", tuple(indexes))
        # (an index the database lacks is left alone: it is built again only if dropped)
        self._definitions: list[tuple[str, str]] = [(str(n), str(s)) for n, s in found.all()]
        for name, _ in self._definitions:
            run(f'DROP INDEX "{name}"')

    def rebuild(self) -> None:
        """Writes: each dropped index built again from its own definition."""
        run = self.session.connection().exec_driver_sql
        for _, sql in self._definitions:
            run(sql)


def first_load(session: Session) -> DeferredIndexes | None:
    """On SQLite with no contact stored at all (not even an erased one), for an import
    into the empty table: the contacts' sort, facet and ``updated_at`` indexes deferred
    to the end (:class:`DeferredIndexes`). The unique addresses stay
    indexed (each batch looks its addresses up), and so do the search words (written in
    key order per batch; staging them for one sort at the end measured slower,
    bench/README.md). None otherwise (PostgreSQL, or contacts already stored: their
    lookups need every index)."""
    if session.get_bind().dialect.name != "sqlite" or session.scalar(select(Contact.id).limit(1)) is not None:
        return None
    return DeferredIndexes(session, [str(ix.name) for ix in _CONTACTS.indexes if not ix.unique and ix.name])
