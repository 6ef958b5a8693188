"""Reading without blocking writers, and keyset pages.

Lists are keyset-paged by primary key (never OFFSET), so page 1000 costs what page 1
costs: ``after`` asks for the rows past the last one shown, ``before`` for the rows
before the first one shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session, sessionmaker

from mailer.store.db import transaction

T = TypeVar("T")
#: A SELECT of any columns (SQLAlchemy 2.1 types a Select by its row).
AnySelect = Select[*tuple[Any, ...]]

#: Most rows one page may hold.
MAX_PAGE = 500


@contextmanager
def read_only(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction for reading only: on SQLite a deferred BEGIN, so staff pages never
    queue behind (or block) the workers' writes. Errors as :func:`mailer.store.db.transaction`."""
    with transaction(factory) as session:
        session.connection(execution_options={"sqlite_deferred": True})
        yield session


@dataclass(frozen=True)
class Page(Generic[T]):
    """One keyset page: ``next_after`` / ``prev_before`` are the cursors of the pages
    next to it, None where there is nothing more in that direction."""

    rows: list[T]
    next_after: int | None
    prev_before: int | None


def keyset(
    session: Session,
    query: AnySelect,
    id_col: Any,
    *,
    after: int | None,
    before: int | None,
    limit: int,
    descending: bool,
    make: Callable[[Any], T],
    key: Callable[[T], int],
) -> Page[T]:
    """Run ``query`` as a keyset page over ``id_col`` (``after`` wins over ``before``)."""
    limit = max(1, min(limit, MAX_PAGE))
    backwards = before is not None and after is None
    if after is not None:
        query = query.where(id_col < after if descending else id_col > after)
    elif before is not None:
        query = query.where(id_col > before if descending else id_col < before)
    # Walking backwards reads the rows nearest the cursor first, then restores page order.
    ascending = descending == backwards
    query = query.order_by(id_col.asc() if ascending else id_col.desc()).limit(limit + 1)
    rows = [make(r) for r in session.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    if not rows:
        return Page(rows, None, None)
    first, last = key(rows[0]), key(rows[-1])
    if backwards:
        return Page(rows, last, first if more else None)
    return Page(rows, last if more else None, first if after is not None else None)
