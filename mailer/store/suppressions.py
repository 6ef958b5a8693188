"""Queries about suppressions: addresses that must never be mailed again (in a scope).

Suppressions match on the address hash, so they outlive the erasure of the address.
Scope ``*`` covers every client; a client slug covers that client's releases only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select
from sqlalchemy.orm import Session

from mailer.domain import GLOBAL_SCOPE, SuppressionReason, email_hash
from mailer.store.contacts import insert_ignoring_conflicts
from mailer.tables import Suppression, SuppressionLog


def add_suppression(
    session: Session,
    email: str,
    *,
    reason: SuppressionReason,
    source: str,
    now: datetime,
    scope: str = GLOBAL_SCOPE,
) -> bool:
    """Writes: suppress the normalized ``email`` in ``scope``. Returns False when it
    already was (the first reason and source are kept); repeating is harmless."""
    stmt = insert_ignoring_conflicts(session, Suppression).values(
        email=email,
        email_hash=email_hash(email),
        scope=scope,
        reason=reason.value,
        source=source[:500],
        created_at=now,
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
    return bool(result.rowcount)


def suppression_scopes(session: Session, hashes: Sequence[str]) -> dict[str, set[str]]:
    """For each suppressed hash among ``hashes``, the scopes it is suppressed in."""
    out: dict[str, set[str]] = {}
    if not hashes:
        return out
    rows = session.execute(select(Suppression.email_hash, Suppression.scope).where(Suppression.email_hash.in_(hashes)))
    for h, scope in rows:
        out.setdefault(h, set()).add(scope)
    return out


def is_suppressed(session: Session, email: str, *, client_scope: str | None = None) -> bool:
    """True when ``email`` is suppressed globally, or in ``client_scope`` when given."""
    scopes = suppression_scopes(session, [email_hash(email)]).get(email_hash(email), set())
    return GLOBAL_SCOPE in scopes or (client_scope is not None and client_scope in scopes)


def remove_suppression(session: Session, email: str, *, scope: str, reason: str, actor: str, now: datetime) -> bool:
    """Writes: lift a suppression, logging who and why. Returns False when there was none."""
    found = session.scalar(
        select(Suppression).where(Suppression.email_hash == email_hash(email), Suppression.scope == scope)
    )
    if found is None:
        return False
    session.add(
        SuppressionLog(email_hash=found.email_hash, scope=scope, action="removed", reason=reason, actor=actor, at=now)
    )
    session.delete(found)
    return True
