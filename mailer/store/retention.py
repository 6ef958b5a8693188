"""Queries of the retention policy: stored raw texts of returned mail (bounce bodies on
delivery events, mail kept for staff) are emptied after a while; the facts (event,
status, diagnostic, suppression) stay.

Reply texts join here when the replies inbox stores them: add its table and column to
:data:`RAW_COLUMNS`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailer.store.tables import DeliveryEvent, InboundMail

#: (name shown to the operator, column holding the raw text, column of its time)
RAW_COLUMNS: list[tuple[str, Any, Any]] = [
    ("bounce_bodies", DeliveryEvent.raw, DeliveryEvent.at),
    ("kept_mail", InboundMail.raw, InboundMail.received_at),
]


def count_raw_before(session: Session, before: datetime) -> dict[str, int]:
    """How many stored raw texts are older than ``before``, per kind."""
    return {
        name: int(session.scalar(select(func.count()).where(raw.is_not(None), at < before)) or 0)
        for name, raw, at in RAW_COLUMNS
    }


def purge_raw_before(session: Session, before: datetime) -> dict[str, int]:
    """Writes: empty the raw texts older than ``before`` (SQLite's ``secure_delete``
    zeroes the freed bytes); returns how many per kind."""
    out = {}
    for name, raw, at in RAW_COLUMNS:
        result = session.execute(update(raw.class_).where(raw.is_not(None), at < before).values({raw.key: None}))
        out[name] = int(result.rowcount)  # type: ignore[attr-defined]
    return out
