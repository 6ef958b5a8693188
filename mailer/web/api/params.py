"""What every API route shares: bounded path and query parameters, the error body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import HTTPException, Path, Query
from pydantic import BaseModel

from mailer.store.ledger.paging import MAX_PAGE
from mailer.web.paths import MAX_ID

#: A query string value with no NUL (the databases reject one with a server error).
NO_NUL = r"^[^\x00]*$"

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID, description="Keyset cursor: an id from a previous page.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


class Problem(BaseModel):
    """An error: what went wrong, in one line."""

    detail: str


def utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` in UTC (a naive time is taken as UTC); 422 when it cannot be."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise HTTPException(422, f"{name}: out of range") from None
