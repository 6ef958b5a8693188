"""The one SQL test of "is this address suppressed here?", shared by planning, claiming,
list counts and the submit checks (read only).

An address is suppressed in a set of scopes when its hash is, or when its domain is
covered by a domain suppression (``@domain``: that domain; ``*.domain``: it and every
domain under it) in one of those scopes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, literal, or_, select
from sqlalchemy.orm import Session

from mailer.store.tables import Suppression


def email_domain(session: Session, email: Any) -> ColumnElement[str]:
    """The domain part of the address column ``email``, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.split_part(email, "@", 2)
    return func.substr(email, func.instr(email, "@") + 1)


def domain_suppressed_in(domain: Any, scopes: Sequence[str]) -> ColumnElement[bool]:
    """The domain column/expression ``domain`` is covered by a domain suppression in ``scopes``."""
    if not scopes:
        return false()
    in_scope = Suppression.scope.in_(list(scopes))
    # ix_suppressions_domain is partial (domain suppressions only); SQLite uses it only
    # when the query repeats its WHERE literally, and then no statistics (ANALYZE with
    # every suppression an address) can make it prefer reading every suppression
    domains_only = Suppression.domain.is_not(None)
    exact = exists(select(Suppression.id).where(domains_only, Suppression.domain == domain, in_scope))
    under = exists(
        select(Suppression.id).where(
            domains_only,
            Suppression.subdomains.is_(True),
            # a range over the index: "IS NOT NULL" alone is no range for SQLite
            Suppression.domain > "",
            in_scope,
            domain.like(literal("%.") + Suppression.domain),
        )
    )
    return or_(exact, under)


def any_domain_suppression(session: Session, scopes: Sequence[str]) -> bool:
    """Reads: is there any domain suppression in ``scopes``? (through the partial
    ``ix_suppressions_domain``)"""
    if not scopes:
        return False
    found = session.scalar(
        select(Suppression.id).where(Suppression.domain.is_not(None), Suppression.scope.in_(list(scopes))).limit(1)
    )
    return found is not None


def suppressed_in(email_hash: Any, domain: Any, scopes: Sequence[str], *, domains: bool = True) -> ColumnElement[bool]:
    """The address with hash ``email_hash`` at ``domain`` is suppressed in any of ``scopes``
    (see :func:`mailer.domain.states.send_scopes`). ``domains=False`` tests the address
    only: for a caller that found no domain suppression in ``scopes``
    (:func:`any_domain_suppression`) in the same transaction."""
    # One seek of uq_suppressions_hash_scope by the hash, its few scopes then filtered:
    # ``scope || ''`` is no index term, so SQLite does not seek once per scope (4% of a
    # planned row's work on SQLite, issue 20)
    by_address = exists(
        select(Suppression.id).where(
            Suppression.email_hash == email_hash, Suppression.scope.concat("").in_(list(scopes))
        )
    )
    if not domains:
        return by_address
    return or_(by_address, and_(domain.is_not(None), domain_suppressed_in(domain, scopes)))
