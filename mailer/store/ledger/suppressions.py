"""Suppressions, newest first (read only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.domain.states import SuppressionReason, email_hash
from mailer.store.ledger.paging import Page, keyset
from mailer.store.tables import Suppression


@dataclass(frozen=True)
class SuppressionLine:
    id: int
    email: str | None
    scope: str
    reason: str
    source: str
    created_at: datetime


def suppressions(
    session: Session,
    *,
    reason: str | None = None,
    scope: str | None = None,
    email: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[SuppressionLine]:
    """Suppressions, newest first; ``email`` matches by hash (so erased addresses are found)."""
    query = select(
        Suppression.id,
        Suppression.email,
        Suppression.scope,
        Suppression.reason,
        Suppression.source,
        Suppression.created_at,
    )
    if reason is not None:
        query = query.where(Suppression.reason == reason)
    if scope is not None:
        query = query.where(Suppression.scope == scope)
    if email is not None:
        query = query.where(Suppression.email_hash == email_hash(email.strip().lower()))
    return keyset(
        session,
        query,
        Suppression.id,
        after=after,
        before=before,
        limit=limit,
        descending=True,
        make=lambda r: SuppressionLine(*r),
        key=lambda r: r.id,
    )


def recent_suppressions(session: Session, reasons: Sequence[SuppressionReason], *, limit: int) -> list[SuppressionLine]:
    """The newest suppressions with one of ``reasons``."""
    query = (
        select(
            Suppression.id,
            Suppression.email,
            Suppression.scope,
            Suppression.reason,
            Suppression.source,
            Suppression.created_at,
        )
        .where(Suppression.reason.in_([r.value for r in reasons]))
        .order_by(Suppression.id.desc())
        .limit(limit)
    )
    return [SuppressionLine(*r) for r in session.execute(query)]
