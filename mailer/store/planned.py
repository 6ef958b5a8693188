"""What a planned delivery row gets besides its contact: its status (``suppressed``,
``capped`` by the cadence cap, or ``queued``), the reason, and its not-before (local-hour
delivery) — SQL expressions over :class:`Contact` for the INSERT ... SELECT of
:mod:`mailer.store.deliveries`; and the planning lock that makes the cap hold over several
workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, not_, null, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from mailer.domain.states import DeliveryStatus
from mailer.store.suppression_match import suppressed_in
from mailer.store.tables import Contact, Delivery

PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.DEFERRED.value)
#: rows that are messages a contact got (the cadence cap counts them)
_MESSAGES = (DeliveryStatus.SENT.value, DeliveryStatus.UNKNOWN.value, DeliveryStatus.BOUNCED.value)
#: the advisory lock key of planning (PostgreSQL), "mlrplan" in ASCII
_PLANNING_LOCK = 0x6D6C72706C616E


@dataclass(frozen=True)
class Waves:
    """Local-hour delivery: each row's not-before by its contact's ``timezone`` (the exact
    stored name), and ``default`` for every other contact."""

    by_zone: dict[str, datetime]
    default: datetime


def not_before(waves: Waves | None) -> ColumnElement[Any]:
    """The planned row's not-before: NULL (at once), or its contact's wave (bound values)."""
    kind = Delivery.not_before.type
    if waves is None:
        return null()
    if not waves.by_zone:
        return literal(waves.default, type_=kind)
    return case(
        {zone: literal(t, type_=kind) for zone, t in waves.by_zone.items()},
        value=Contact.timezone,
        else_=literal(waves.default, type_=kind),
    )


@dataclass(frozen=True)
class Step:
    """One planning step (:mod:`mailer.engine.planner`): the contacts whose id is above
    ``after`` and at most ``through`` (None: every id above ``after``)."""

    after: int
    through: int | None

    def covers(self, contact_id: Any) -> ColumnElement[bool]:
        """``contact_id`` (a column) is in this step."""
        above: ColumnElement[bool] = contact_id > self.after
        if self.through is None:
            return above
        return and_(above, contact_id <= self.through)


#: every contact at once (one step)
ALL_CONTACTS = Step(0, None)


#: SQLite's page cache while a planning step runs (KiB): a step touches thousands of
#: pages (the rows, their indexes; before migration 0018 three indexes took random keys);
#: with the default 2 MiB they were evicted and re-read within the step (3x the step's
#: time at 100k rows)
_STEP_CACHE_KIB = 65536
_DEFAULT_CACHE_KIB = 2000


@contextmanager
def step_cache(session: Session) -> Iterator[None]:
    """Writes nothing: on SQLite, a roomy page cache for the connection while the block
    runs (a planning step), the default again after it (the pages are freed)."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    session.execute(text(f"PRAGMA cache_size = -{_STEP_CACHE_KIB}"))
    try:
        yield
    finally:
        # not over the step's own error (a session that failed refuses statements)
        with suppress(SQLAlchemyError):
            session.execute(text(f"PRAGMA cache_size = -{_DEFAULT_CACHE_KIB}"))


def step_end(session: Session, after: int, size: int) -> int | None:
    """The id of the ``size``-th contact above ``after`` (the end of a step of ``size``
    contacts), or None when fewer are left (the last step); one walk of the primary key."""
    return session.scalar(select(Contact.id).where(Contact.id > after).order_by(Contact.id).offset(size - 1).limit(1))


@dataclass(frozen=True)
class Cap:
    """The cadence cap a release is planned under: a contact with ``limit`` or more
    messages of other releases since ``since`` (sent, unknown or bounced), or still
    pending, is planned ``capped`` with ``reason``."""

    limit: int
    since: datetime
    reason: str


def recent_messages(release_id: int, since: datetime) -> ColumnElement[int]:
    """How many messages of other releases the contact got since ``since`` or has pending
    (a correlated count over ``ix_deliveries_contact_status``)."""
    other = aliased(Delivery)
    counted = or_(
        other.status.in_(PENDING),
        and_(
            other.status.in_(_MESSAGES),
            func.coalesce(other.sent_at, other.first_attempt_at, other.updated_at) >= since,
        ),
    )
    return (
        select(func.count())
        .select_from(other)
        .where(other.contact_id == Contact.id, other.release_id != release_id, counted)
        .scalar_subquery()
    )


def planned_status(
    release_id: int, scopes: Sequence[str], cap: Cap | None, domain: ColumnElement[str], *, domains: bool = True
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The (status, reason) a planned row gets: ``suppressed`` (the address, or its
    ``domain``; ``domains=False``: no domain suppression exists in ``scopes``, see
    :func:`~mailer.store.suppression_match.suppressed_in`), ``capped`` or ``queued``."""
    suppressed = suppressed_in(Contact.email_hash, domain, scopes, domains=domains)
    if cap is None:
        status = case(
            (suppressed, literal(DeliveryStatus.SUPPRESSED.value)), else_=literal(DeliveryStatus.QUEUED.value)
        )
        return status, null()
    over = recent_messages(release_id, cap.since) >= cap.limit
    status = case(
        (suppressed, literal(DeliveryStatus.SUPPRESSED.value)),
        (over, literal(DeliveryStatus.CAPPED.value)),
        else_=literal(DeliveryStatus.QUEUED.value),
    )
    reason = case((and_(not_(suppressed), over), literal(cap.reason[:40])), else_=null())
    return status, reason


def lock_planning(session: Session) -> None:
    """Writes nothing; on PostgreSQL, waits for (and holds until the transaction ends) the
    planning lock, so two workers planning releases at once count each other's rows for the
    cadence cap (READ COMMITTED: the second counts once the first has committed). SQLite
    writers are one at a time already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_PLANNING_LOCK)))
