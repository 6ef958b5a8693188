"""A release's deliveries as a whole: planning them, counting them, and the staff actions
on all of them (cancel the pending rows, retry a status).

One row per (release, contact), planned by :func:`plan_segment`. The per-row life of a
delivery once planned (claim, lease, the in-data mark, recording results, the sweep of
dead workers' leases) is the queue: :mod:`mailer.store.queue`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Insert,
    String,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.store.planned import ALL_CONTACTS, PENDING, Cap, Step, Waves, not_before, planned_status
from mailer.store.segments import compile_rule
from mailer.store.suppression_match import any_domain_suppression, email_domain
from mailer.store.tables import Contact, Delivery, Release

#: The reason of a delivery left out of an embargoed release (the contact is marked
#: ``embargo_ok = false``).
EMBARGO_REASON = "embargo: contact is not embargo_ok"


def rowcount(result: Any) -> int:
    """The rows an UPDATE or DELETE touched (typed for mypy)."""
    cursor: CursorResult[Any] = result
    return int(cursor.rowcount or 0)


def _domain_of(session: Session, email: Any) -> ColumnElement[str]:
    return email_domain(session, email)


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


def planned_message_id(session: Session, prefix: str, domain: str) -> ColumnElement[str]:
    """The Message-ID of each row one planning statement adds:
    ``<{prefix}.{run}.{128 random bits}@{domain}>``, ``run`` being 32 random bits drawn
    here, once for the statement (the step), the rest drawn by the database per row.

    Why the run: the Message-ID is unique (an index) and is how a bounce that quotes it
    finds its row. Fully random values put each planned row at a random place in that
    index, and on SQLite each step's commit then rewrote most of its pages (issue 20:
    ~48 KB written per planned row at 1,000,000). With the run first, a step's rows sit
    side by side in the index (new pages, and one split where they go in). Nothing in it
    is a release or contact id or a time; rows of one step share their run.
    """
    run = secrets.token_hex(4)
    return literal(f"<{prefix}.{run}.") + _random_hex(session) + literal(f"@{domain}>")


# --- planning ---------------------------------------------------------------------------


class Guard(Enum):
    """How a planning statement keeps a contact from getting a second row of the release
    (the unique (release, contact) constraint is the guarantee either way).

    ``ON_CONFLICT`` (the default: rows of the release may exist anywhere, and another
    transaction may be adding some): ``ON CONFLICT DO NOTHING``. ``NOT_EXISTS`` (rows may
    exist, and nobody else adds any meanwhile: a planning step, whose contacts its cursor
    claimed): the SELECT leaves out contacts that have one, by the same index.
    ``NONE`` (the step's contacts have no row of the release yet: the step's first
    statement, checked by :func:`step_has_rows`): a plain INSERT; a row there would fail
    the statement. ON CONFLICT made every planned row cost ~2 µs more on SQLite (issue 20).
    """

    ON_CONFLICT = "on_conflict"
    NOT_EXISTS = "not_exists"
    NONE = "none"


_PLAN_COLUMNS = (
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
    "reason",
    "not_before",
)


def due_release_ids(session: Session, now: datetime) -> list[int]:
    """Approved releases whose send time has come, oldest first; not those without a send
    time (approved, waiting to be scheduled: sending at once is an explicit ``schedule
    --now``, issue 21) nor those waiting for a person (``hold_reason``, see
    :mod:`mailer.releases.holds`)."""
    return list(
        session.scalars(
            select(Release.id)
            .where(
                Release.status == ReleaseStatus.APPROVED.value,
                Release.hold_reason.is_(None),
                Release.send_at.is_not(None),
                Release.send_at <= now,
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
    cap: Cap | None = None,
    waves: Waves | None = None,
    step: Step = ALL_CONTACTS,
    guard: Guard = Guard.ON_CONFLICT,
) -> int:
    """Writes: one delivery row per contact of ``step`` the segment selects, in one
    INSERT ... SELECT.

    Contacts that already have a row for this release (an earlier segment, or an earlier
    run of planning) are skipped (``guard`` says how; see :class:`Guard`). Suppressed
    addresses get a ``suppressed`` row so staff see them. Returns rows added.

    The domain suppressions are tested only when ``scopes`` has one (one probe first, in
    the same transaction: ~10% of a planned row's work on SQLite when none exists; a
    domain suppression recorded after it is still honoured at the claim).

    Each row's Message-ID is drawn in the same statement (:func:`planned_message_id`)
    and stored on the row, so a retry reuses it and it tells nothing (no release or
    contact id to guess from).
    """
    message_id = planned_message_id(session, message_id_prefix, message_id_domain)
    status, reason = planned_status(
        release_id, scopes, cap, _domain_of(session, Contact.email), domains=any_domain_suppression(session, scopes)
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
        reason,
        not_before(waves),
    ).where(step.covers(Contact.id), compile_rule(rule))
    return _insert_planned(session, release_id, list(_PLAN_COLUMNS), select_rows, step, guard)


def step_has_rows(session: Session, release_id: int, step: Step) -> bool:
    """Reads: does any contact of ``step`` have a row of the release already? (one probe
    of ``uq_deliveries_release_contact``)"""
    found = session.scalar(
        select(Delivery.id)
        .where(Delivery.release_id == release_id, step.covers(Delivery.contact_id))
        .order_by(Delivery.contact_id)
        .limit(1)
    )
    return found is not None


def _insert_planned(
    session: Session,
    release_id: int,
    columns: list[str],
    select_rows: Select[*tuple[Any, ...]],
    step: Step,
    guard: Guard,
) -> int:
    """Writes: INSERT ... SELECT of the release's new rows (contacts of ``step``), kept
    from planning a contact twice as ``guard`` says; returns the rows added."""
    if guard is not Guard.ON_CONFLICT:
        if guard is Guard.NOT_EXISTS:
            mine = aliased(Delivery)
            select_rows = select_rows.where(
                ~exists(select(mine.id).where(mine.release_id == release_id, mine.contact_id == Contact.id))
            )
        # a plain INSERT ... SELECT: every driver reports its rowcount
        return rowcount(session.execute(insert(Delivery).from_select(columns, select_rows)))
    stmt: Insert
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(Delivery).from_select(columns, select_rows).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        # SQLite needs a WHERE on INSERT ... SELECT ... ON CONFLICT to parse it.
        stmt = sqlite_insert(Delivery).from_select(columns, select_rows.where(literal(True))).on_conflict_do_nothing()
    before = _release_rows(session, release_id, step)
    session.execute(stmt)
    # rowcount of INSERT ... SELECT ... ON CONFLICT is not reported by every driver; the
    # count is the step's only (uq_deliveries_release_contact), not the release's.
    return _release_rows(session, release_id, step) - before


def plan_thread(
    session: Session,
    *,
    release_id: int,
    parent_id: int,
    statuses: Sequence[DeliveryStatus],
    scopes: Sequence[str],
    message_id_domain: str,
    now: datetime,
    leave_out: Sequence[Select[Any]] = (),
    cap: Cap | None = None,
    waves: Waves | None = None,
    step: Step = ALL_CONTACTS,
    guard: Guard = Guard.ON_CONFLICT,
) -> int:
    """Writes: a linked release's rows (correction, withdrawal, follow-up) for the
    contacts of ``step``, in one INSERT ... SELECT over the parent's deliveries: one row per parent delivery in
    ``statuses`` whose contact is still live and in none of the ``leave_out`` selects (each
    a SELECT of contact ids: who replied, who is held...). Each row keeps the parent row's
    segment (its variant) and answers its Message-ID (``in_reply_to``); addresses
    suppressed since get a ``suppressed`` row. Returns rows added."""
    parent = aliased(Delivery)
    message_id = planned_message_id(session, "m", message_id_domain)
    status, reason = planned_status(
        release_id, scopes, cap, _domain_of(session, Contact.email), domains=any_domain_suppression(session, scopes)
    )
    select_rows = (
        select(
            literal(release_id),
            Contact.id,
            parent.segment_id,
            Contact.email,
            Contact.email_hash,
            _domain_of(session, Contact.email),
            status,
            message_id,
            literal(0),
            literal(now, type_=Delivery.updated_at.type),
            reason,
            not_before(waves),
            parent.message_id,
        )
        .join(Contact, Contact.id == parent.contact_id)
        .where(
            parent.release_id == parent_id,
            step.covers(parent.contact_id),
            parent.status.in_([s.value for s in statuses]),
            Contact.email.is_not(None),
            *(Contact.id.not_in(excluded) for excluded in leave_out),
        )
    )
    columns = [*_PLAN_COLUMNS, "in_reply_to"]
    return _insert_planned(session, release_id, columns, select_rows, step, guard)


def exclude_not_embargo_ok(session: Session, release_id: int, now: datetime, *, step: Step = ALL_CONTACTS) -> int:
    """Writes: the release's queued rows (of ``step``'s contacts) whose contact is marked
    ``embargo_ok = false`` become ``excluded`` with the reason :data:`EMBARGO_REASON`
    (never sent); returns how many. Run right after planning a step of an embargoed
    release, in the same transaction."""
    untrusted = select(Contact.id).where(Contact.embargo_ok == false())
    return rowcount(
        session.execute(
            update(Delivery)
            .where(
                Delivery.release_id == release_id,
                step.covers(Delivery.contact_id),
                Delivery.status == DeliveryStatus.QUEUED.value,
                Delivery.contact_id.in_(untrusted.scalar_subquery()),
            )
            .values(status=DeliveryStatus.EXCLUDED.value, reason=EMBARGO_REASON, updated_at=now)
        )
    )


def _release_rows(session: Session, release_id: int, step: Step) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.release_id == release_id, step.covers(Delivery.contact_id))
        )
        or 0
    )


# --- a release's rows as a whole ----------------------------------------------------------


def sending_release_ids(session: Session) -> list[int]:
    return list(
        session.scalars(select(Release.id).where(Release.status == ReleaseStatus.SENDING.value).order_by(Release.id))
    )


def running_release_ids(session: Session) -> list[int]:
    """Releases whose rows workers claim: ``sending``, and ``planning`` (the rows planned
    so far go out while the rest is planned)."""
    running = [ReleaseStatus.PLANNING.value, ReleaseStatus.SENDING.value]
    return list(session.scalars(select(Release.id).where(Release.status.in_(running)).order_by(Release.id)))


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


def release_capped(session: Session, release_id: int, now: datetime) -> int:
    """Writes: the release's ``capped`` rows go back to the queue (the cap was lifted for
    it); returns how many."""
    return rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.release_id == release_id, Delivery.status == DeliveryStatus.CAPPED.value)
            .values(status=DeliveryStatus.QUEUED.value, reason=None, next_attempt_at=None, updated_at=now)
        )
    )
