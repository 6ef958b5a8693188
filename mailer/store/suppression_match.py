"""The one SQL test of "is this address suppressed here?", shared by planning, claiming,
list counts and the submit checks (read only).

An address is suppressed in a set of scopes when its hash is, or when its domain is
covered by a domain suppression (``@domain``: that domain; ``*.domain``: it and every
domain under it) in one of those scopes.

``*.domain`` is answered two ways, chosen by the database once per statement from how many
such suppressions the scopes hold: a few are each compared with ``LIKE '%.' || domain``
(about 0.5 µs per suppression per address); more than :data:`FEW_SUBDOMAIN_RULES` are
looked up by equality, once for the address's domain and once for each parent domain
(``news.example.co.uk``, ``example.co.uk``, ``co.uk``, ``uk``: a recursive CTE, ~5 µs an
address however many suppressions there are; 1,000 of them cost 300 µs an address the
first way, ~5 minutes of planning a million contacts). With none, neither runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Text, and_, case, cast, exists, false, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from mailer.store.tables import Suppression

#: up to this many ``*.domain`` suppressions in the scopes, each is tested with LIKE;
#: above it, the parent domains are looked up by equality (measured crossover: ~9)
FEW_SUBDOMAIN_RULES = 8


class _FirstDot(FunctionElement[int]):
    """The 1-based position of the first ``.`` in a string, 0 when there is none."""

    type = Integer()
    inherit_cache = True


@compiles(_FirstDot)
def _first_dot_sqlite(element: _FirstDot, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)}, '.')"


@compiles(_FirstDot, "postgresql")
def _first_dot_postgresql(element: _FirstDot, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)}, '.')"


def email_domain(session: Session, email: Any) -> ColumnElement[str]:
    """The domain part of the address column ``email``, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.split_part(email, "@", 2)
    return func.substr(email, func.instr(email, "@") + 1)


def _domain_and_parents(domain: Any) -> Any:
    """A recursive CTE (rendered inside its subquery, correlated to ``domain``'s row):
    ``domain`` and each domain above it, one row each."""
    # text on both sides of the UNION (PostgreSQL refuses varchar(255) joined to text)
    seed = select(cast(domain, Text()).label("name")).correlate_except(None)
    names = seed.cte("domain_and_parents", recursive=True, nesting=True)
    above = select(func.substr(names.c.name, _FirstDot(names.c.name) + 1)).where(_FirstDot(names.c.name) > 0)
    return names.union_all(above)


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
    # a range over the index: "IS NOT NULL" alone is no range for SQLite
    subdomain_rules = (domains_only, Suppression.subdomains.is_(True), Suppression.domain > "", in_scope)
    # how many *.domain rules (up to one more than "few"): not correlated, so computed
    # once per statement
    rules = (
        select(func.count())
        .select_from(select(Suppression.id).where(*subdomain_rules).limit(FEW_SUBDOMAIN_RULES + 1).subquery())
        .scalar_subquery()
    )
    by_like = exists(select(Suppression.id).where(*subdomain_rules, domain.like(literal("%.") + Suppression.domain)))
    names = _domain_and_parents(domain)
    by_parent = exists(
        select(literal(1))
        .select_from(names)
        .where(
            exists(
                select(Suppression.id).where(
                    domains_only, Suppression.domain == names.c.name, Suppression.subdomains.is_(True), in_scope
                )
            )
        )
    )
    under = case((rules == 0, false()), (rules <= FEW_SUBDOMAIN_RULES, by_like), else_=by_parent)
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
