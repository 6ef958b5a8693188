"""A release's deliveries as a whole: planning them, counting them, and the staff actions
on all of them (cancel the pending rows, retry a status).

One row per (release, contact), planned by :func:`plan_segment`. The per-row life of a
delivery once planned (claim, lease, the in-data mark, recording results, the sweep of
dead workers' leases) is the queue: :mod:`mailer.store.queue`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    String,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.store.segments import compile_rule
from mailer.store.tables import Contact, Delivery, Release, Suppression

#: The reason of a delivery left out of an embargoed release (the contact is marked
#: ``embargo_ok = false``).
EMBARGO_REASON = "embargo: contact is not embargo_ok"

PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.DEFERRED.value)


def rowcount(result: Any) -> int:
    """The rows an UPDATE or DELETE touched (typed for mypy)."""
    cursor: CursorResult[Any] = result
    return int(cursor.rowcount or 0)


def suppressed_in(email_hash: Any, scopes: Sequence[str]) -> ColumnElement[bool]:
    """The address is suppressed in any of ``scopes`` (see :func:`mailer.domain.states.send_scopes`)."""
    return exists(
        select(Suppression.id).where(Suppression.email_hash == email_hash, Suppression.scope.in_(list(scopes)))
    )


def _domain_of(session: Session, email: Any) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.split_part(email, "@", 2)
    return func.substr(email, func.instr(email, "@") + 1)


def _random_hex(session: Session) -> ColumnElement[str]:
    """32 hex digits of fresh randomness per row, computed by the database.

    Planning stays one INSERT ... SELECT (no per-row round trip to Python). No random
    function exists on both backends, so each gets its own: PostgreSQL's
    ``gen_random_uuid()`` (core since 13; from its strong random source, 122 random bits)
    and SQLite's ``randomblob(16)`` (the library's ChaCha20 generator, seeded by the OS).
    Random rather than a keyed hash of (release, contact): SQLite has no HMAC, and a
    stored random token needs no key that a rotation could change.
    """
    if session.get_bind().dialect.name == "postgresql":
        return func.replace(cast(func.gen_random_uuid(), String), "-", "")
    return func.lower(func.hex(func.randomblob(16)))


# --- planning ---------------------------------------------------------------------------


def due_release_ids(session: Session, now: datetime) -> list[int]:
    """Approved releases whose send time has come (or that have none), oldest first;
    not those waiting for a person (``hold_reason``, see :mod:`mailer.releases.holds`)."""
    return list(
        session.scalars(
            select(Release.id)
            .where(
                Release.status == ReleaseStatus.APPROVED.value,
                Release.hold_reason.is_(None),
                or_(Release.send_at.is_(None), Release.send_at <= now),
            )
            .order_by(Release.send_at, Release.id)
        )
    )


def plan_segment(
    session: Session,
    *,
    release_id: int,
    segment_id: int,
    rule: str,
    scopes: Sequence[str],
    message_id_domain: str,
    now: datetime,
    message_id_prefix: str = "m",
) -> int:
    """Writes: one delivery row per contact the segment selects, in one INSERT ... SELECT.

    Contacts that already have a row for this release (an earlier segment, or an earlier
    run of planning) are skipped by the unique (release, contact) constraint. Suppressed
    addresses get a ``suppressed`` row so staff see them. Returns rows added.

    Each row's Message-ID is ``<{prefix}.{128 random bits}@{domain}>``, drawn by the
    database in the same statement (see :func:`_random_hex`) and stored on the row, so a
    retry reuses it and it tells nothing (no release or contact id to guess from).
    """
    message_id = literal("<" + message_id_prefix + ".") + _random_hex(session) + literal("@" + message_id_domain + ">")
    status = case(
        (suppressed_in(Contact.email_hash, scopes), literal(DeliveryStatus.SUPPRESSED.value)),
        else_=literal(DeliveryStatus.QUEUED.value),
    )
    select_rows = select(
        literal(release_id),
        Contact.id,
        literal(segment_id),
        Contact.email,
        Contact.email_hash,
        _domain_of(session, Contact.email),
        status,
        message_id,
        literal(0),
        literal(now, type_=Delivery.updated_at.type),
    ).where(compile_rule(rule))
    columns = [
        "release_id",
        "contact_id",
        "segment_id",
        "email",
        "email_hash",
        "domain",
        "status",
        "message_id",
        "attempts",
        "updated_at",
    ]
    stmt = insert(Delivery).from_select(columns, select_rows)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(Delivery).from_select(columns, select_rows).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        # SQLite needs a WHERE on INSERT ... SELECT ... ON CONFLICT to parse it.
        stmt = sqlite_insert(Delivery).from_select(columns, select_rows.where(literal(True))).on_conflict_do_nothing()
    before = _release_rows(session, release_id)
    session.execute(stmt)
    # rowcount of INSERT ... SELECT ... ON CONFLICT is not reported by every driver.
    return _release_rows(session, release_id) - before


def exclude_not_embargo_ok(session: Session, release_id: int, now: datetime) -> int:
    """Writes: the release's queued rows whose contact is marked ``embargo_ok = false``
    become ``excluded`` with the reason :data:`EMBARGO_REASON` (never sent); returns how many.
    Run right after planning an embargoed release, in the same transaction."""
    untrusted = select(Contact.id).where(Contact.embargo_ok == false())
    return rowcount(
        session.execute(
            update(Delivery)
            .where(
                Delivery.release_id == release_id,
                Delivery.status == DeliveryStatus.QUEUED.value,
                Delivery.contact_id.in_(untrusted.scalar_subquery()),
            )
            .values(status=DeliveryStatus.EXCLUDED.value, reason=EMBARGO_REASON, updated_at=now)
        )
    )


def _release_rows(session: Session, release_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Delivery).where(Delivery.release_id == release_id)) or 0


# --- a release's rows as a whole ----------------------------------------------------------


def sending_release_ids(session: Session) -> list[int]:
    return list(
        session.scalars(select(Release.id).where(Release.status == ReleaseStatus.SENDING.value).order_by(Release.id))
    )


def release_status(session: Session, release_id: int) -> str | None:
    return session.scalar(select(Release.status).where(Release.id == release_id))


def pending_count(session: Session, release_id: int) -> int:
    """Rows of the release that still need work (queued, sending or deferred)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.release_id == release_id, Delivery.status.in_(PENDING))
        )
        or 0
    )


def status_counts(session: Session, release_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.release_id == release_id).group_by(Delivery.status)
    )
    return {status: int(n) for status, n in rows}


def cancel_pending(session: Session, release_id: int, now: datetime) -> int:
    """Writes: queued and deferred rows of a cancelled release become ``cancelled``."""
    return rowcount(
        session.execute(
            update(Delivery)
            .where(
                Delivery.release_id == release_id,
                Delivery.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
            )
            .values(status=DeliveryStatus.CANCELLED.value, next_attempt_at=None, updated_at=now)
        )
    )


def requeue(session: Session, release_id: int, statuses: Sequence[DeliveryStatus], now: datetime) -> int:
    """Writes: staff retry — rows in ``statuses`` go back to the queue (same Message-ID)."""
    return rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.release_id == release_id, Delivery.status.in_([s.value for s in statuses]))
            .values(
                status=DeliveryStatus.QUEUED.value,
                next_attempt_at=None,
                first_attempt_at=None,
                reason=None,
                updated_at=now,
            )
        )
    )


def cancelled_with_pending(session: Session) -> list[int]:
    """Cancelled releases that still have queued or deferred rows (cancelled mid-send)."""
    return list(
        session.scalars(
            select(Delivery.release_id)
            .join(Release, Release.id == Delivery.release_id)
            .where(
                Release.status == ReleaseStatus.CANCELLED.value,
                Delivery.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
            )
            .distinct()
        )
    )
