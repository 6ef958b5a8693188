"""Queries of the delivery engine: the database is the queue and the ledger.

Row life: ``queued`` → (claim) ``sending`` with a lease → (``in_data`` set just before the
message data, only while the worker still holds the lease) → ``sent`` | ``deferred`` |
``failed`` | ``unknown`` (or back to ``queued`` when the relay refused our sender, which
is not an attempt). Leases are renewed on a timer by a live worker; an expired lease
means a dead worker: rows that were in the data exchange become ``unknown`` (never resent
automatically; the lease owner is kept, so a result the worker did hear may still be
recorded over it), the others return to the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from typing import cast as typing_cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.store.segments import compile_rule
from mailer.store.tables import Contact, Delivery, DeliveryEvent, Release, Suppression

PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value, DeliveryStatus.DEFERRED.value)


def _rowcount(result: Any) -> int:
    cursor: CursorResult[Any] = result
    return int(cursor.rowcount or 0)


def fast_commit(session: Session | Connection) -> None:
    """On PostgreSQL, let this transaction's commit return before the WAL flush: safe
    against a killed worker (only a server crash can lose it), and several times faster."""
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        session.execute(_SYNC_OFF)


#: the deliveries table for Core statements (typed as a Table for mypy)
DELIVERIES = typing_cast(Table, Delivery.__table__)
_EVENTS = typing_cast(Table, DeliveryEvent.__table__)
_SYNC_OFF = text("SET LOCAL synchronous_commit = off")


def _suppressed(email_hash: Any, scopes: Sequence[str]) -> ColumnElement[bool]:
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


# --- releases ---------------------------------------------------------------------------


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
        (_suppressed(Contact.email_hash, scopes), literal(DeliveryStatus.SUPPRESSED.value)),
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


def _release_rows(session: Session, release_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Delivery).where(Delivery.release_id == release_id)) or 0


def sending_release_ids(session: Session) -> list[int]:
    return list(
        session.scalars(select(Release.id).where(Release.status == ReleaseStatus.SENDING.value).order_by(Release.id))
    )


def release_status(session: Session, release_id: int) -> str | None:
    return session.scalar(select(Release.status).where(Release.id == release_id))


def breaker_state(session: Session, release_id: int) -> tuple[str, int]:
    """The release's shared circuit-breaker state: (window marks, streak)."""
    row = session.execute(
        select(Release.breaker_window, Release.breaker_streak).where(Release.id == release_id)
    ).one_or_none()
    return (row.breaker_window or "", int(row.breaker_streak or 0)) if row else ("", 0)


def merge_breaker(session: Session, release_id: int, marks: str, *, keep: int) -> tuple[str, int]:
    """Writes: add this process's newest results (``marks``: ``0``/``1`` each, ``1`` a
    counted refusal) to the release's breaker state in one atomic UPDATE; returns the
    merged (window of the last ``keep`` marks, streak of refusals in a row)."""
    if not marks:
        return breaker_state(session, release_id)
    joined = func.coalesce(Release.breaker_window, "") + marks
    if session.get_bind().dialect.name == "postgresql":
        window: ColumnElement[str] = func.right(joined, keep)
    else:
        window = func.substr(joined, -keep)
    trailing = len(marks) - len(marks.rstrip("1"))
    streak = Release.breaker_streak + trailing if trailing == len(marks) else literal(trailing)
    row = session.execute(
        update(Release)
        .where(Release.id == release_id)
        .values(breaker_window=window, breaker_streak=streak)
        .returning(Release.breaker_window, Release.breaker_streak)
    ).one_or_none()
    return (row.breaker_window or "", int(row.breaker_streak or 0)) if row else ("", 0)


def advance_ledger(session: Session, release_id: int, count: int) -> tuple[str | None, int]:
    """Writes: raise the release's send ledger by ``count`` (results just recorded, in the
    caller's transaction) in one atomic UPDATE; returns its (key, new sequence) for the
    send fence (:mod:`mailer.releases.fence`), to be written after the commit."""
    row = session.execute(
        update(Release)
        .where(Release.id == release_id)
        .values(ledger_seq=Release.ledger_seq + count)
        .returning(Release.ledger_key, Release.ledger_seq)
    ).one()
    return row.ledger_key, int(row.ledger_seq)


def ledger_state(session: Session, release_id: int) -> tuple[str | None, int]:
    """The release's send ledger: (key, sequence)."""
    row = session.execute(select(Release.ledger_key, Release.ledger_seq).where(Release.id == release_id)).one()
    return row.ledger_key, int(row.ledger_seq or 0)


# --- claiming ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with what rendering needs."""

    id: int
    release_id: int
    segment_id: int | None
    contact_id: int
    email: str
    message_id: str
    attempts: int
    first_attempt_at: datetime | None
    first_name: str | None
    last_name: str | None
    outlet: str | None
    attributes: dict[str, Any]


def claim_batch(
    session: Session,
    *,
    release_id: int,
    scopes: Sequence[str],
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[Claimed]:
    """Writes: lease up to ``limit`` due rows (queued, or deferred whose retry time came).

    One UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING on
    PostgreSQL; on SQLite the same statement inside the ``BEGIN IMMEDIATE`` transaction.
    Rows whose address was suppressed since planning become ``suppressed`` here, so an
    unsubscribe is honored for every message claimed after it was recorded.
    """
    due = (
        select(Delivery.id)
        .where(
            Delivery.release_id == release_id,
            or_(
                Delivery.status == DeliveryStatus.QUEUED.value,
                and_(Delivery.status == DeliveryStatus.DEFERRED.value, Delivery.next_attempt_at <= now),
            ),
        )
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed_ids = list(
        session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(due.scalar_subquery()))
            .values(
                status=DeliveryStatus.SENDING.value,
                lease_owner=owner,
                lease_expires_at=now + lease,
                in_data=False,
                updated_at=now,
            )
            .returning(Delivery.id)
        )
    )
    if not claimed_ids:
        return []
    newly_suppressed = list(
        session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(claimed_ids), _suppressed(Delivery.email_hash, scopes))
            .values(status=DeliveryStatus.SUPPRESSED.value, lease_owner=None, lease_expires_at=None)
            .returning(Delivery.id)
        )
    )
    if newly_suppressed:
        session.execute(
            insert(DeliveryEvent),
            [
                {"delivery_id": i, "kind": "suppressed", "detail": "suppressed before sending", "at": now}
                for i in newly_suppressed
            ],
        )
    return _claimed_rows(session, Delivery.id.in_(claimed_ids), Delivery.status == DeliveryStatus.SENDING.value)


def held_rows(session: Session, owner: str, delivery_ids: Sequence[int]) -> list[Claimed]:
    """Rows among ``delivery_ids`` still leased by ``owner`` (sending, or swept to
    ``unknown``): what a replayed journal of that worker may still record."""
    return _claimed_rows(
        session,
        Delivery.id.in_(list(delivery_ids)),
        Delivery.lease_owner == owner,
        Delivery.status.in_([DeliveryStatus.SENDING.value, DeliveryStatus.UNKNOWN.value]),
    )


def _claimed_rows(session: Session, *where: ColumnElement[bool]) -> list[Claimed]:
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.release_id,
            Delivery.segment_id,
            Delivery.contact_id,
            Delivery.email,
            Delivery.message_id,
            Delivery.attempts,
            Delivery.first_attempt_at,
            Contact.first_name,
            Contact.last_name,
            Contact.outlet,
            Contact.attributes,
        )
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(*where, Delivery.email.is_not(None))
        .order_by(Delivery.id)
    )
    return [
        Claimed(
            r.id,
            r.release_id,
            r.segment_id,
            r.contact_id,
            r.email,
            r.message_id,
            r.attempts,
            r.first_attempt_at,
            r.first_name,
            r.last_name,
            r.outlet,
            dict(r.attributes or {}),
        )
        for r in rows
    ]


_MARK_IN_DATA = (
    update(DELIVERIES)
    .where(
        DELIVERIES.c.id.in_(bindparam("ids", expanding=True)),
        DELIVERIES.c.lease_owner == bindparam("owner"),
        DELIVERIES.c.status == DeliveryStatus.SENDING.value,
    )
    .values(in_data=True)
)


#: DBAPI paramstyle → placeholder, for the driver-level path of :func:`mark_in_data`
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _driver_autocommit(conn: Connection) -> Any:
    """The DBAPI connection under ``conn`` when a statement sent to it directly commits
    on its own (SQLite in driver autocommit, PostgreSQL in AUTOCOMMIT) and SQLAlchemy has
    no transaction open on it; else None."""
    if conn.in_transaction() or conn.dialect.paramstyle not in _PLACEHOLDERS:
        return None
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:
        return None
    name = conn.dialect.name
    if name == "sqlite" and getattr(dbapi, "isolation_level", "") is None and not dbapi.in_transaction:
        return dbapi
    if name == "postgresql" and getattr(dbapi, "autocommit", False) is True:
        return dbapi
    return None


def mark_in_data(session: Session | Connection, delivery_ids: Sequence[int], owner: str) -> int:
    """Writes: these rows are now in the data exchange (a crash now leaves them unknown).
    Only rows ``owner`` still holds (leased to it and ``sending``) are marked; returns how
    many were. A row not marked was taken over by another worker and must not be sent.

    Called once per message, so it must be cheap. Given a Connection in autocommit (the
    dispatcher's marker connection), the UPDATE goes straight to the driver: one
    statement that is committed when it returns, without SQLAlchemy's BEGIN/COMMIT and
    statement machinery (~2.5x cheaper on SQLite). Otherwise a Core statement compiled once
    runs in the caller's transaction. Driver errors surface as DBAPIError either way."""
    if not delivery_ids:
        return 0
    dbapi = _driver_autocommit(session) if isinstance(session, Connection) else None
    if dbapi is None:
        return _rowcount(session.execute(_MARK_IN_DATA, {"ids": list(delivery_ids), "owner": owner}))
    dialect = session.get_bind().dialect if isinstance(session, Session) else session.dialect
    p = _PLACEHOLDERS[dialect.paramstyle]
    t = DELIVERIES.c
    sql = (
        f"UPDATE {DELIVERIES.name} SET {t.in_data.name} = {p} "
        f"WHERE {t.id.name} IN ({', '.join([p] * len(delivery_ids))}) AND {t.lease_owner.name} = {p}"
        f" AND {t.status.name} = {p}"
    )
    params = (True, *delivery_ids, owner, DeliveryStatus.SENDING.value)
    try:
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, params)
            return int(cursor.rowcount or 0)
        finally:
            cursor.close()
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, ready to record."""

    delivery_id: int
    status: DeliveryStatus
    code: int | None
    reply: str
    reason: str | None
    next_attempt_at: datetime | None
    first_attempt_at: datetime | None
    event: str
    #: False for a row handed back to the queue without an attempt (our sender refused)
    attempted: bool = True
    #: the event's text when it is not ``reply`` (a sender-side refusal: "reason: reply")
    detail: str | None = None


def record_outcomes(session: Session, outcomes: Sequence[Outcome], owner: str, now: datetime) -> set[int]:
    """Writes: the results of a batch, in one executemany UPDATE plus one INSERT of events.

    Only rows still leased by ``owner`` and ``sending`` (or swept to ``unknown`` meanwhile:
    the heard result is better than "unknown") are written, and only they get events: a
    worker whose lease was taken over never overwrites the new owner's state. Returns the
    ids written.
    """
    if not outcomes:
        return set()
    t = DELIVERIES.c
    mine = set(
        session.scalars(
            select(Delivery.id)
            .where(
                Delivery.id.in_([o.delivery_id for o in outcomes]),
                Delivery.lease_owner == owner,
                Delivery.status.in_([DeliveryStatus.SENDING.value, DeliveryStatus.UNKNOWN.value]),
            )
            .with_for_update()
        )
    )
    outcomes = [o for o in outcomes if o.delivery_id in mine]
    if not outcomes:
        return set()
    # Core UPDATE (not the ORM's bulk path): one executemany with a guard per row.
    stmt = (
        update(DELIVERIES)
        .where(t.id == bindparam("b_id"), t.lease_owner == bindparam("b_owner"))
        .values(
            status=bindparam("b_status"),
            last_code=bindparam("b_code"),
            last_reply=bindparam("b_reply"),
            reason=bindparam("b_reason"),
            next_attempt_at=bindparam("b_next", type_=Delivery.next_attempt_at.type),
            first_attempt_at=bindparam("b_first", type_=Delivery.first_attempt_at.type),
            sent_at=bindparam("b_sent", type_=Delivery.sent_at.type),
            attempts=t.attempts + bindparam("b_inc"),
            in_data=False,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    params = [
        {
            "b_id": o.delivery_id,
            "b_owner": owner,
            "b_status": o.status.value,
            "b_code": o.code,
            "b_reply": o.reply[:1000],
            "b_reason": o.reason,
            "b_next": o.next_attempt_at,
            "b_first": o.first_attempt_at,
            "b_sent": now if o.status == DeliveryStatus.SENT else None,
            "b_inc": 1 if o.attempted else 0,
        }
        for o in outcomes
    ]
    # Core on the session's connection (same transaction): no ORM bulk-insert machinery.
    conn = session.connection()
    conn.execute(stmt, params)
    conn.execute(
        insert(_EVENTS),
        [
            {
                "delivery_id": o.delivery_id,
                "kind": o.event,
                "code": o.code,
                "detail": (o.detail or o.reply)[:1000],
                "at": now,
            }
            for o in outcomes
        ],
    )
    return mine


def release_leases(session: Session, owner: str, now: datetime) -> int:
    """Writes: on a clean stop, hand rows claimed but not in the data exchange back to the queue."""
    return _rowcount(
        session.execute(
            update(Delivery)
            .where(
                Delivery.lease_owner == owner,
                Delivery.status == DeliveryStatus.SENDING.value,
                Delivery.in_data.is_(False),
            )
            .values(status=DeliveryStatus.QUEUED.value, lease_owner=None, lease_expires_at=None, updated_at=now)
        )
    )


def renew_leases(session: Session, owner: str, now: datetime, lease: timedelta) -> int:
    """Writes: a live worker extends the leases of everything it holds."""
    return _rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.lease_owner == owner, Delivery.status == DeliveryStatus.SENDING.value)
            .values(lease_expires_at=now + lease)
        )
    )


def sweep_expired_leases(session: Session, now: datetime) -> tuple[int, int]:
    """Writes: rows of dead workers. In the data exchange → ``unknown``; else → ``queued``.

    Returns (requeued, unknown).
    """
    expired = and_(
        Delivery.status == DeliveryStatus.SENDING.value,
        Delivery.lease_expires_at.is_not(None),
        Delivery.lease_expires_at < now,
    )
    unknown_ids = list(
        session.scalars(
            update(Delivery)
            .where(expired, Delivery.in_data.is_(True))
            .values(
                status=DeliveryStatus.UNKNOWN.value,
                reason="worker died during the data exchange",
                in_data=False,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(Delivery.id)
        )
    )
    if unknown_ids:
        session.execute(
            insert(DeliveryEvent),
            [
                {"delivery_id": i, "kind": "unknown", "detail": "lease expired during the data exchange", "at": now}
                for i in unknown_ids
            ],
        )
    requeued = _rowcount(
        session.execute(
            update(Delivery)
            .where(expired, Delivery.in_data.is_(False))
            .values(status=DeliveryStatus.QUEUED.value, lease_owner=None, lease_expires_at=None, updated_at=now)
        )
    )
    return requeued, len(unknown_ids)


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


def next_retry_at(session: Session, release_id: int) -> datetime | None:
    return session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.release_id == release_id, Delivery.status == DeliveryStatus.DEFERRED.value
        )
    )


def status_counts(session: Session, release_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.release_id == release_id).group_by(Delivery.status)
    )
    return {status: int(n) for status, n in rows}


def cancel_pending(session: Session, release_id: int, now: datetime) -> int:
    """Writes: queued and deferred rows of a cancelled release become ``cancelled``."""
    return _rowcount(
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
    return _rowcount(
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
