"""Queries about clients, releases, their segments and variants, approvals, events and proofs.

Functions that change data say so ("Writes:"). Callers own the transaction
(:func:`mailer.store.db.transaction`); nothing here commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import ReleaseStatus
from mailer.store.segments import compile_rule
from mailer.store.tables import (
    Client,
    Contact,
    MailerMeta,
    Release,
    ReleaseEditor,
    ReleaseEvent,
    ReleaseSegment,
    Segment,
)

# --- clients ----------------------------------------------------------------------------


def find_client(session: Session, slug: str) -> Client | None:
    """The client ``slug``, or None."""
    return session.scalar(select(Client).where(Client.slug == slug))


def get_client(session: Session, slug: str) -> Client:
    """The client ``slug``; raises NotFoundError."""
    found = find_client(session, slug)
    if found is None:
        raise NotFoundError(f"no client {slug!r} (see `mailer clients list`)")
    return found


def get_client_by_id(session: Session, client_id: int) -> Client:
    """The client with this id; raises NotFoundError."""
    found = session.get(Client, client_id)
    if found is None:
        raise NotFoundError(f"no client with id {client_id}")
    return found


def insert_client(session: Session, values: dict[str, Any], *, now: datetime) -> Client:
    """Writes: a new client from validated ``values``; InputError when the slug is taken."""
    if find_client(session, values["slug"]) is not None:
        raise InputError(f"client {values['slug']!r} already exists")
    client = Client(**values, created_at=now)
    session.add(client)
    session.flush()
    return client


def all_clients(session: Session) -> list[Client]:
    """Every client by slug."""
    return list(session.scalars(select(Client).order_by(Client.slug)))


def update_client(session: Session, client: Client, values: dict[str, Any]) -> Client:
    """Writes: the given (validated) columns of ``client``."""
    for key, value in values.items():
        setattr(client, key, value)
    session.flush()
    return client


# --- releases ---------------------------------------------------------------------------


def get_release(session: Session, release_id: int, *, for_update: bool = False) -> Release:
    """The release; with ``for_update`` the row is locked until the transaction ends
    (PostgreSQL ``FOR UPDATE``; SQLite writers already hold the database lock).
    Raises NotFoundError."""
    query = select(Release).where(Release.id == release_id)
    if for_update:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise NotFoundError(f"no release {release_id} (see `mailer releases list`)")
    return found


def insert_release(session: Session, release: Release) -> Release:
    """Writes: a new release row; returns it with its id."""
    session.add(release)
    session.flush()
    return release


@dataclass(frozen=True)
class ReleaseRow:
    """One line of a release listing."""

    id: int
    title: str
    client_slug: str
    status: str
    author: str
    send_at: datetime | None
    updated_at: datetime


def list_releases(session: Session, *, status: str | None = None) -> list[ReleaseRow]:
    """Releases (optionally in one status), newest first."""
    query = select(Release, Client.slug).join(Client, Client.id == Release.client_id).order_by(Release.id.desc())
    if status is not None:
        query = query.where(Release.status == status)
    return [
        ReleaseRow(r.id, r.title, slug, r.status, r.author, r.send_at, r.updated_at)
        for r, slug in session.execute(query).all()
    ]


@dataclass(frozen=True)
class LinkedRow:
    """A correction, withdrawal or follow-up of a release."""

    id: int
    kind: str
    status: str
    title: str


def linked_releases(session: Session, parent_id: int) -> list[LinkedRow]:
    """The releases that answer ``parent_id`` (corrections, withdrawals, follow-ups), oldest first."""
    query = (
        select(Release.id, Release.kind, Release.status, Release.title)
        .where(Release.parent_id == parent_id)
        .order_by(Release.id)
    )
    return [LinkedRow(r.id, r.kind or "", r.status, r.title) for r in session.execute(query)]


def set_hold(session: Session, release_id: int, reason: str, *, now: datetime) -> bool:
    """Writes: an approved, not yet held release waits for a person (``hold_reason``).
    False when it is no longer approved or already held."""
    result = session.execute(
        update(Release)
        .where(Release.id == release_id, Release.status == ReleaseStatus.APPROVED.value, Release.hold_reason.is_(None))
        .values(hold_reason=reason, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return bool(getattr(result, "rowcount", 0))


def set_hold_reason(session: Session, release_id: int, reason: str | None) -> None:
    """Writes: why a release waits for a person (None: it no longer waits)."""
    session.execute(
        update(Release)
        .where(Release.id == release_id)
        .values(hold_reason=reason)
        .execution_options(synchronize_session="fetch")
    )


# --- segments and variants --------------------------------------------------------------


def find_segments(session: Session, slugs: Sequence[str]) -> dict[str, Segment]:
    """The segments among ``slugs`` that exist, by slug."""
    if not slugs:
        return {}
    return {s.slug: s for s in session.scalars(select(Segment).where(Segment.slug.in_(list(slugs))))}


def release_segments(session: Session, release_id: int) -> list[tuple[ReleaseSegment, Segment]]:
    """The release's segments with their variant overrides, by position."""
    query = (
        select(ReleaseSegment, Segment)
        .join(Segment, Segment.id == ReleaseSegment.segment_id)
        .where(ReleaseSegment.release_id == release_id)
        .order_by(ReleaseSegment.position)
    )
    return [(rs, seg) for rs, seg in session.execute(query).all()]


def replace_release_segments(session: Session, release_id: int, rows: Sequence[ReleaseSegment]) -> None:
    """Writes: the release's segment rows, replacing what it had."""
    session.execute(delete(ReleaseSegment).where(ReleaseSegment.release_id == release_id))
    session.add_all(rows)
    session.flush()


def first_segment_contact(session: Session, rule: str) -> Contact | None:
    """The live contact with the lowest id that the segment ``rule`` selects now."""
    return session.scalar(
        select(Contact).where(compile_rule(rule), Contact.email.is_not(None)).order_by(Contact.id).limit(1)
    )


def find_contact(session: Session, email: str) -> Contact | None:
    """The live contact with this normalized address, or None."""
    return session.scalar(select(Contact).where(Contact.email == email))


# --- workflow history -------------------------------------------------------------------


def add_release_event(
    session: Session,
    release_id: int,
    *,
    from_status: str | None,
    to_status: str,
    actor: str,
    note: str | None,
    now: datetime,
) -> ReleaseEvent:
    """Writes: one workflow event (append-only)."""
    event = ReleaseEvent(
        release_id=release_id, from_status=from_status, to_status=to_status, actor=actor, note=note, at=now
    )
    session.add(event)
    session.flush()
    return event


def release_events(session: Session, release_id: int) -> list[ReleaseEvent]:
    """The release's workflow history, oldest first."""
    return list(
        session.scalars(select(ReleaseEvent).where(ReleaseEvent.release_id == release_id).order_by(ReleaseEvent.id))
    )


def latest_submitter(session: Session, release_id: int) -> str | None:
    """Who made the release's latest move to ``submitted``, or None."""
    return session.scalar(
        select(ReleaseEvent.actor)
        .where(ReleaseEvent.release_id == release_id, ReleaseEvent.to_status == ReleaseStatus.SUBMITTED.value)
        .order_by(ReleaseEvent.id.desc())
        .limit(1)
    )


def add_editor(session: Session, release_id: int, actor: str, *, now: datetime) -> None:
    """Writes: ``actor`` wrote or changed the release's content (once per person)."""
    key = actor.casefold()
    if session.get(ReleaseEditor, (release_id, key)) is None:
        session.add(ReleaseEditor(release_id=release_id, actor_key=key, actor=actor, at=now))
        session.flush()


def release_editors(session: Session, release_id: int) -> list[str]:
    """Everyone who wrote or changed the release's content, first first."""
    return list(
        session.scalars(
            select(ReleaseEditor.actor).where(ReleaseEditor.release_id == release_id).order_by(ReleaseEditor.at)
        )
    )


# --- this database ----------------------------------------------------------------------

_DATABASE_ID = "database_id"


def database_identity(session: Session) -> str:
    """Writes (once): this database's random identity, created on first use.

    A restored copy keeps it (that is the point: the send fence recognises the copy);
    a new database gets a new one. Concurrent first uses agree: the loser's insert
    fails on the primary key inside a savepoint and it reads the winner's value.
    """
    found = session.scalar(select(MailerMeta.value).where(MailerMeta.key == _DATABASE_ID))
    if found is not None:
        return found
    try:
        with session.begin_nested():
            session.add(MailerMeta(key=_DATABASE_ID, value=secrets.token_hex(16)))
    except IntegrityError:
        pass
    return session.scalars(select(MailerMeta.value).where(MailerMeta.key == _DATABASE_ID)).one()


# --- release status ---------------------------------------------------------------------


def move_release_status(
    session: Session,
    release_id: int,
    *,
    src: ReleaseStatus,
    dst: ReleaseStatus,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """Writes: ``src`` → ``dst`` only if the release is still in ``src`` (a guarded UPDATE,
    so two processes racing for one move cannot both win), with the columns that go with
    the new state. True for the one caller that won. Legality is the caller's business
    (:func:`mailer.releases.workflow.move`)."""
    values: dict[str, Any] = {"status": dst.value, "updated_at": now}
    if dst == ReleaseStatus.PAUSED:
        values["pause_reason"] = reason
    if dst in (ReleaseStatus.SENT, ReleaseStatus.PARTIAL, ReleaseStatus.CANCELLED):
        values["finished_at"] = now
    if dst in (ReleaseStatus.SENDING, ReleaseStatus.PLANNING) and src != ReleaseStatus.PLANNING:
        # (re)started or resumed: the breaker starts from nothing (planning → sending is
        # neither: the rows planned so far were being sent all along)
        values["pause_reason"] = None
        values["finished_at"] = None
        values["breaker_window"] = ""
        values["breaker_streak"] = 0
        if src == ReleaseStatus.APPROVED:
            values["planned_at"] = now
            # planning in steps starts before the first contact (mailer.engine.planner)
            values["plan_cursor"] = 0
    result = session.execute(
        update(Release).where(Release.id == release_id, Release.status == src.value).values(**values)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


# --- send ledger (mailer.releases.fence) -------------------------------------------------


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


# --- planning in steps (mailer.engine.planner) -------------------------------------------


def planning_release_ids(session: Session) -> list[int]:
    """Releases with planning steps left (``planning``, or ``paused`` before its planning
    finished), and ``planning`` ones whose last step is done (to be moved on); by id."""
    return list(
        session.scalars(
            select(Release.id)
            .where(
                or_(
                    Release.status == ReleaseStatus.PLANNING.value,
                    and_(Release.status == ReleaseStatus.PAUSED.value, Release.plan_cursor.is_not(None)),
                )
            )
            .order_by(Release.id)
        )
    )


def advance_plan_cursor(session: Session, release_id: int, cursor: int, to: int | None) -> bool:
    """Writes: the release's planning cursor moves from ``cursor`` to ``to`` (None: the
    last step) only if it is still at ``cursor`` and the release still plans (planning or
    paused): a compare-and-set, so of two workers planning the same step one wins; on
    PostgreSQL the winner holds the release row until its step commits. True for the winner."""
    result = session.execute(
        update(Release)
        .where(
            Release.id == release_id,
            Release.plan_cursor == cursor,
            Release.status.in_([ReleaseStatus.PLANNING.value, ReleaseStatus.PAUSED.value]),
        )
        .values(plan_cursor=to)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1
