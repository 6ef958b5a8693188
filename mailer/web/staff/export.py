"""Streamed, formula-safe CSV of any filtered staff view.

Rows are read in keyset chunks, each in its own short read transaction, and written as
they come: memory stays flat and no transaction is held open while the client reads.
Every cell goes through :func:`mailer.audience.contacts.neutralize`, so a spreadsheet shows an
address like ``=HYPERLINK(...)@x`` as text instead of running it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from mailer.audience.contacts import neutralize
from mailer.store.ledger.paging import Page, read_only

T = TypeVar("T")
CHUNK = 500


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return neutralize(str(value))


def csv_rows(
    sessions: sessionmaker[Session],
    fetch: Callable[[Session, int | None], Page[T]],
    header: Sequence[str],
    row: Callable[[T], Sequence[Any]],
) -> Iterator[str]:
    """CSV text, a chunk at a time: the header, then ``row(item)`` for every item that
    ``fetch(session, after)`` pages through (``after`` None for the first page)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    after: int | None = None
    while True:
        with read_only(sessions) as session:
            page = fetch(session, after)
        for item in page.rows:
            writer.writerow([_cell(v) for v in row(item)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if page.next_after is None:
            return
        after = page.next_after


def csv_response(filename: str, body: Iterator[str]) -> Response:
    """A streamed CSV download named ``filename`` (never cached)."""
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
