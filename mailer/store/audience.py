"""Who a release would reach now: counts and sample names per segment, and the whole
audience without duplicates and without suppressed addresses. Read-only; the planner's
INSERT ... SELECT (:func:`mailer.store.deliveries.plan_segment`) stays the ledger's truth."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from mailer.store.segments import compile_rule
from mailer.store.tables import Contact, Suppression

__all__ = ["audience_count", "reachable_sample"]


def _not_suppressed(scopes: Sequence[str]) -> ColumnElement[bool]:
    return ~(
        select(Suppression.id)
        .where(Suppression.email_hash == Contact.email_hash, Suppression.scope.in_(list(scopes)))
        .exists()
    )


def audience_count(session: Session, rules: Sequence[str], scopes: Sequence[str]) -> int:
    """Live contacts any of ``rules`` selects, each once, minus those suppressed in ``scopes``."""
    if not rules:
        return 0
    query = (
        select(func.count())
        .select_from(Contact)
        .where(or_(*(compile_rule(rule) for rule in rules)), _not_suppressed(scopes))
    )
    return session.scalar(query) or 0


def reachable_sample(session: Session, rule: str, scopes: Sequence[str], limit: int = 5) -> list[Contact]:
    """Up to ``limit`` contacts the rule selects that are not suppressed in ``scopes``, by id."""
    query = select(Contact).where(compile_rule(rule), _not_suppressed(scopes)).order_by(Contact.id).limit(limit)
    return list(session.scalars(query))
