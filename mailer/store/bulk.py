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

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session


def append_rows(session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Writes: ``rows`` (tuples in the order of ``columns``) into ``table``; returns how many."""
    connection = session.connection()
    dialect = connection.dialect
    processors: list[Callable[[Any], Any] | None] = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    if any(p is not None for p in processors):
        rows = (tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True)) for row in rows)
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in columns)
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
    batch = list(rows)
    if batch:
        placeholders = ", ".join("?" for _ in columns)
        cursor = raw.cursor()
        try:
            cursor.executemany(f"INSERT INTO {name} ({quoted}) VALUES ({placeholders})", batch)
        finally:
            cursor.close()
    return len(batch)
