"""Keyset paging of the contact list: the cursor of a page (the last row's sort key and
id, opaque to the browser) and positions down a sort index. Never OFFSET over the
matches: page 20,000 costs what page 1 costs."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from mailer.domain.errors import InputError
from mailer.store.tables import Contact


def encode(values: tuple[Any, ...]) -> str:
    text = "\x1f".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in values)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def decode(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
        value, _, ident = text.rpartition("\x1f")
        key: Any = datetime.fromisoformat(value) if sort == "updated" else value
        return key, int(ident)
    except (ValueError, UnicodeError) as exc:
        raise InputError("cursor: not a page of this list") from exc


def position_after(
    session: Session, column: Any, descending: bool, cursor: str | None, sort: str, rows: int
) -> tuple[Any, int] | None:
    """The (sort key, id) of the contact ``rows`` down the sort from ``cursor`` (read from
    the sort index alone), None when fewer are left."""
    position = tuple_(column, Contact.id)
    query = select(column, Contact.id)
    if cursor:
        key, ident = decode(cursor, sort)
        query = query.where(position < tuple_(key, ident) if descending else position > tuple_(key, ident))
    order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
    row = session.execute(query.order_by(*order).offset(rows - 1).limit(1)).first()
    return None if row is None else (row[0], int(row[1]))
