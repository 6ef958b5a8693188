"""The delivery queue: what worker processes do to single rows. The database is the
queue and the ledger.

Row life: ``queued`` → (claim) ``sending`` with a lease → (``in_data`` set just before the
message data, only while the worker still holds the lease) → ``sent`` | ``deferred`` |
``failed`` | ``unknown`` (or back to ``queued`` when the relay refused our sender, which
is not an attempt). Leases are renewed on a timer by a live worker; an expired lease
means a dead worker: rows that were in the data exchange become ``unknown`` (never resent
automatically; the lease owner is kept, so a result the worker did hear may still be
recorded over it), the others return to the queue.

Also here: the release's circuit-breaker columns, merged at each recording. Renewing,
releasing and sweeping leases are in :mod:`mailer.store.leases`; planning and
the release-wide counts are in :mod:`mailer.store.deliveries`.

Over 400 lines on purpose: the claim, the in-data mark and the recording of results are
one row life; their statements (built once, some sent to the driver directly: issue 20)
share the table's columns and guards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from mailer.domain.states import DeliveryStatus
from mailer.store.contact_holds import hold_claimed
from mailer.store.suppression_match import any_domain_suppression, suppressed_in
from mailer.store.tables import Contact, Delivery, DeliveryEvent, Release, Stamp

#: the deliveries table for Core statements (typed as a Table for mypy)
DELIVERIES = cast(Table, Delivery.__table__)
_EVENTS = cast(Table, DeliveryEvent.__table__)
_CONTACTS = cast(Table, Contact.__table__)
_SYNC_OFF = text("SET LOCAL synchronous_commit = off")


def fast_commit(session: Session | Connection) -> None:
    """On PostgreSQL, let this transaction's commit return before the WAL flush: safe
    against a killed worker (only a server crash can lose it), and several times faster."""
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        session.execute(_SYNC_OFF)


# --- the release's circuit breaker ------------------------------------------------------


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
    #: the Message-ID this message answers (a linked release), else None
    in_reply_to: str | None = None
    #: the contact's IANA time zone (an embargo is shown in it)
    timezone: str | None = None


#: ``status`` as SQL text, not a bound value, so that both databases may use the partial
#: indexes of the due rows (their WHERE says the same); see :func:`due_ranges`.
_QUEUED: ColumnElement[str] = literal_column(f"'{DeliveryStatus.QUEUED.value}'", String)
_DEFERRED: ColumnElement[str] = literal_column(f"'{DeliveryStatus.DEFERRED.value}'", String)


def due_ranges(release_id: int | BindParameter[Any], now: datetime | BindParameter[Any]) -> tuple[Select[int], ...]:
    """The claim's three index ranges of the release's due rows, each in its index's
    order, each starting at its first due row (so reading the first ``n`` of one costs
    about ``n`` index entries, whatever the release's size or how much of it is sent):

    - queued, no not-before (``ix_deliveries_due_queued``: release, NULL, then id);
    - queued, not-before passed (the same index: release, not-before ≤ now, then id;
      rows of a later wave lie past the range's end and are never read);
    - deferred, retry time passed (``ix_deliveries_due_deferred``: release, retry time, id).

    (A single ``OR`` of the three made SQLite read and sort every index entry of the
    release, and PostgreSQL walk the primary key past every sent row: bench/claim_bench.py.)
    """
    d = Delivery
    return (
        select(d.id)
        .where(d.release_id == release_id, d.status == _QUEUED, d.not_before.is_(None))
        # ordered as the index is (not_before is NULL throughout): PostgreSQL needs the
        # column named to read the range in index order, without a sort
        .order_by(d.not_before, d.id),
        select(d.id)
        .where(d.release_id == release_id, d.status == _QUEUED, d.not_before <= now)
        .order_by(d.not_before, d.id),
        select(d.id)
        .where(d.release_id == release_id, d.status == _DEFERRED, d.next_attempt_at <= now)
        .order_by(d.next_attempt_at, d.id),
    )


def _due_ids(release_id: int | BindParameter[Any], now: datetime | BindParameter[Any], limit: int) -> Select[int]:
    """The ids of up to ``limit`` due rows of the release, lowest id first: the first
    ``limit`` of each of :func:`due_ranges` (locked, SKIP LOCKED, on PostgreSQL: only
    what a range returns is locked), then the lowest ids of those at most ``3 * limit``."""
    parts = [r.limit(limit).with_for_update(skip_locked=True).subquery() for r in due_ranges(release_id, now)]
    candidates = union_all(*(select(p.c.id) for p in parts)).subquery()
    return select(candidates.c.id).order_by(candidates.c.id).limit(limit)


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
    """Writes: lease up to ``limit`` due rows (queued and past their not-before, or
    deferred whose retry time came), lowest id first.

    One UPDATE ... WHERE id IN (the candidates of :func:`_due_ids`, each range FOR UPDATE
    SKIP LOCKED) RETURNING on PostgreSQL; on SQLite the same statement inside the ``BEGIN
    IMMEDIATE`` transaction. Its cost does not grow with the release (see
    :func:`due_ranges`). Rows whose address was suppressed since planning become
    ``suppressed`` here, so an unsubscribe is honored for every message claimed after it
    was recorded.
    """
    # Core statements on the session's connection (same transaction): the ORM's bulk
    # UPDATE machinery and 200 literal ids coerced one by one per statement were most of
    # a claim's CPU (issue 20); the id lists go as one expanding parameter each, and the
    # statements are built once (per batch size and scopes), not per claim.
    conn = session.connection()
    claim = _claim_statement(limit)
    claimed_ids: list[int] = list(
        conn.execute(
            claim, {"b_release": release_id, "b_now": now, "b_owner": owner, "b_expires": now + lease}
        ).scalars()
    )
    if not claimed_ids:
        return []
    # probed after the claim: a domain rule recorded before this point is seen by the
    # UPDATE below, as if the check were one statement; none in the scopes (the common
    # case) leaves only the address check per row
    suppress = _suppress_statement(tuple(scopes), domains=any_domain_suppression(session, scopes))
    newly_suppressed: list[int] = list(conn.execute(suppress, {"ids": claimed_ids}).scalars())
    if newly_suppressed:
        conn.execute(
            insert(_EVENTS),
            [
                {"delivery_id": i, "kind": "suppressed", "detail": "suppressed before sending", "at": now}
                for i in newly_suppressed
            ],
        )
    hold_claimed(session, claimed_ids, now=now)  # held since planning (an out-of-office reply)
    return _rows(session.connection().execute(_CLAIMED_ROWS, {"ids": claimed_ids}))


@functools.cache
def _claim_statement(limit: int) -> Update:
    """The claim's UPDATE of up to ``limit`` due rows (parameters ``b_release``,
    ``b_now``, ``b_owner``, ``b_expires``), built once per batch size."""
    t = DELIVERIES.c
    now = bindparam("b_now", type_=Stamp)
    return (
        update(DELIVERIES)
        .where(t.id.in_(_due_ids(bindparam("b_release"), now, limit).scalar_subquery()))
        .values(
            status=DeliveryStatus.SENDING.value,
            lease_owner=bindparam("b_owner"),
            lease_expires_at=bindparam("b_expires", type_=Stamp),
            in_data=False,
            updated_at=now,
        )
        .returning(t.id)
    )


@functools.cache
def _suppress_statement(scopes: tuple[str, ...], *, domains: bool) -> Update:
    """The UPDATE of the claimed rows (``ids``) suppressed in ``scopes``; ``domains``:
    whether any domain suppression exists there (see :func:`suppressed_in`). Built once
    per (scopes, domains)."""
    t = DELIVERIES.c
    return (
        update(DELIVERIES)
        .where(
            t.id.in_(bindparam("ids", expanding=True)), suppressed_in(t.email_hash, t.domain, scopes, domains=domains)
        )
        .values(status=DeliveryStatus.SUPPRESSED.value, lease_owner=None, lease_expires_at=None)
        .returning(t.id)
    )


def _ids(ids: Sequence[int]) -> BindParameter[Any]:
    """A list of ids as one expanding parameter (not one bound literal per id)."""
    return bindparam("ids", list(ids), expanding=True)


def held_rows(session: Session, owner: str, delivery_ids: Sequence[int]) -> list[Claimed]:
    """Rows among ``delivery_ids`` still leased by ``owner`` (sending, or swept to
    ``unknown``): what a replayed journal of that worker may still record."""
    t = DELIVERIES.c
    return _claimed_rows(
        session,
        t.id.in_(_ids(delivery_ids)),
        t.lease_owner == owner,
        t.status.in_([DeliveryStatus.SENDING.value, DeliveryStatus.UNKNOWN.value]),
    )


def _claimed_rows(session: Session, *where: ColumnElement[bool]) -> list[Claimed]:
    """The rows ``where`` selects (of the deliveries table) with their contacts' fields;
    a Core select on the session's connection (no ORM row loading)."""
    return _rows(session.connection().execute(_ROWS.where(*where)))


def _rows(rows: Any) -> list[Claimed]:
    """:class:`Claimed` rows from a result of :data:`_ROWS` (unpacked by position, in
    the select's order: no per-field lookup by name)."""
    return [
        Claimed(i, rel, seg, contact, email, mid, attempts, first_at, first, last, outlet, dict(attrs or {}), irt, tz)
        for i, rel, seg, contact, email, mid, attempts, first_at, first, last, outlet, attrs, irt, tz in rows
    ]


#: the fields of a claimed row (see :func:`_rows`); callers add their WHERE
_ROWS = (
    select(
        DELIVERIES.c.id,
        DELIVERIES.c.release_id,
        DELIVERIES.c.segment_id,
        DELIVERIES.c.contact_id,
        DELIVERIES.c.email,
        DELIVERIES.c.message_id,
        DELIVERIES.c.attempts,
        DELIVERIES.c.first_attempt_at,
        _CONTACTS.c.first_name,
        _CONTACTS.c.last_name,
        _CONTACTS.c.outlet,
        _CONTACTS.c.attributes,
        DELIVERIES.c.in_reply_to,
        _CONTACTS.c.timezone,
    )
    .join_from(DELIVERIES, _CONTACTS, _CONTACTS.c.id == DELIVERIES.c.contact_id)
    .where(DELIVERIES.c.email.is_not(None))
    .order_by(DELIVERIES.c.id)
)
#: the rows a claim just leased (parameter ``ids``), built once
_CLAIMED_ROWS = _ROWS.where(
    DELIVERIES.c.id.in_(bindparam("ids", expanding=True)), DELIVERIES.c.status == DeliveryStatus.SENDING.value
)


_MARK_IN_DATA = (
    update(DELIVERIES)
    .where(
        DELIVERIES.c.id.in_(bindparam("ids", expanding=True)),
        DELIVERIES.c.lease_owner == bindparam("owner"),
        DELIVERIES.c.status == DeliveryStatus.SENDING.value,
    )
    .values(in_data=True)
    .returning(DELIVERIES.c.id)
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


def mark_in_data(conn: Session | Connection, delivery_ids: Sequence[int], owner: str) -> set[int]:
    """Writes: these rows are now in the data exchange (a crash now leaves them unknown).
    Only rows ``owner`` still holds (leased to it and ``sending``) are marked; returns the
    ids that were. A row not marked was taken over by another worker and must not be sent.

    Called for every message (the engine's writer thread marks all the rows waiting for a
    mark at once), so it must be cheap. Given a Connection in autocommit (the writer's
    marks connection), the UPDATE goes straight to the driver: one statement committed
    when it returns, without SQLAlchemy's BEGIN/COMMIT and statement machinery (see
    bench/README.md for what it saves). Otherwise a Core statement runs in the caller's
    transaction. Driver errors surface as DBAPIError either way."""
    if not delivery_ids:
        return set()
    dbapi = _driver_autocommit(conn) if isinstance(conn, Connection) else None
    if dbapi is None:
        return set(conn.scalars(_MARK_IN_DATA, {"ids": list(delivery_ids), "owner": owner}))
    dialect = conn.get_bind().dialect if isinstance(conn, Session) else conn.dialect
    p = _PLACEHOLDERS[dialect.paramstyle]
    t = DELIVERIES.c
    sql = (
        f"UPDATE {DELIVERIES.name} SET {t.in_data.name} = {p} "
        f"WHERE {t.id.name} IN ({', '.join([p] * len(delivery_ids))}) AND {t.lease_owner.name} = {p}"
        f" AND {t.status.name} = {p} RETURNING {t.id.name}"
    )
    params = (True, *delivery_ids, owner, DeliveryStatus.SENDING.value)
    try:
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, params)
            return {int(row[0]) for row in cursor.fetchall()}
        finally:
            cursor.close()
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


@dataclass(frozen=True)
class Decision:
    """What one attempt does to its row, ready to record (decided by
    :func:`mailer.engine.outcomes.decide`)."""

    delivery_id: int
    status: DeliveryStatus
    code: int | None
    reply: str
    reason: str | None
    next_attempt_at: datetime | None
    first_attempt_at: datetime | None
    #: the kind of the delivery event written with it
    event: str
    #: False for a row handed back to the queue without an attempt (our sender refused)
    attempted: bool = True
    #: the event's text when it is not ``reply`` (a sender-side refusal: "reason: reply")
    detail: str | None = None


def record_decisions(session: Session, decisions: Sequence[Decision], owner: str, now: datetime) -> set[int]:
    """Writes: the results of a batch, in one executemany UPDATE plus one INSERT of events.

    Only rows still leased by ``owner`` and ``sending`` (or swept to ``unknown`` meanwhile:
    the heard result is better than "unknown") are written, and only they get events: a
    worker whose lease was taken over never overwrites the new owner's state. Returns the
    ids written.
    """
    if not decisions:
        return set()
    # Core on the session's connection (same transaction), the ids as one parameter.
    conn = session.connection()
    mine: set[int] = set(
        conn.execute(_HELD_FOR_RECORDING, {"ids": [d.delivery_id for d in decisions], "owner": owner}).scalars()
    )
    decisions = [d for d in decisions if d.delivery_id in mine]
    if not decisions:
        return set()
    # The UPDATE and the events' INSERT go to the driver as two executemany statements
    # of plain tuples (exec_driver_sql, still in this transaction): through Core, binding
    # ten parameters per row (a type processor per datetime) was most of a recording's
    # CPU (issue 20). Datetimes go through their column type's own bind processor, once
    # per distinct value (a group shares ``now`` and mostly the same attempt times).
    dialect = conn.dialect
    p = _PLACEHOLDERS[dialect.paramstyle]
    stamp = _stamp_binder(dialect)
    at = stamp(now)
    sent = DeliveryStatus.SENT
    conn.exec_driver_sql(
        _RECORD_SQL.format(p=p),
        [
            (
                o.status.value,
                o.code,
                o.reply[:1000],
                o.reason,
                stamp(o.next_attempt_at),
                stamp(o.first_attempt_at),
                at if o.status is sent else None,
                1 if o.attempted else 0,
                False,
                at,
                o.delivery_id,
                owner,
            )
            for o in decisions
        ],
    )
    conn.exec_driver_sql(
        _EVENTS_SQL.format(p=p),
        [(o.delivery_id, o.event, o.code, (o.detail or o.reply)[:1000], at) for o in decisions],
    )
    return mine


_HELD_FOR_RECORDING = (
    select(DELIVERIES.c.id)
    .where(
        DELIVERIES.c.id.in_(bindparam("ids", expanding=True)),
        DELIVERIES.c.lease_owner == bindparam("owner"),
        DELIVERIES.c.status.in_([DeliveryStatus.SENDING.value, DeliveryStatus.UNKNOWN.value]),
    )
    .with_for_update()
)

_d = DELIVERIES.c
#: one row's result (``{p}``: the driver's placeholder); the guard as in the claim
_RECORD_SQL = (
    f"UPDATE {DELIVERIES.name} SET {_d.status.name} = {{p}}, {_d.last_code.name} = {{p}}, "
    f"{_d.last_reply.name} = {{p}}, {_d.reason.name} = {{p}}, {_d.next_attempt_at.name} = {{p}}, "
    f"{_d.first_attempt_at.name} = {{p}}, {_d.sent_at.name} = {{p}}, "
    f"{_d.attempts.name} = {_d.attempts.name} + {{p}}, {_d.in_data.name} = {{p}}, "
    f"{_d.lease_owner.name} = NULL, {_d.lease_expires_at.name} = NULL, {_d.updated_at.name} = {{p}} "
    f"WHERE {_d.id.name} = {{p}} AND {_d.lease_owner.name} = {{p}}"
)
_e = _EVENTS.c
_EVENTS_SQL = (
    f"INSERT INTO {_EVENTS.name} ({_e.delivery_id.name}, {_e.kind.name}, {_e.code.name}, "
    f"{_e.detail.name}, {_e.at.name}) VALUES ({{p}}, {{p}}, {{p}}, {{p}}, {{p}})"
)
del _d, _e


def _stamp_binder(dialect: Dialect) -> Callable[[datetime | None], Any]:
    """``datetime`` → the driver's value for a timestamp column of this dialect, exactly
    as a Core statement binds it (:class:`UTCDateTime`, then the dialect's own
    processor), remembered per distinct value for one call."""
    process = DELIVERIES.c.sent_at.type.bind_processor(dialect)
    seen: dict[datetime, Any] = {}

    def bind(value: datetime | None) -> Any:
        if value is None:
            return None
        found = seen.get(value)
        if found is None:
            found = seen[value] = process(value) if process is not None else value
        return found

    return bind
