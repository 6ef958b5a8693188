"""Queries about process heartbeats: the last sign of life of each ``mailer run`` and
inbound server, read by GET /readyz and ``mailer doctor``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.store.tables import Heartbeat


def ping(session: Session) -> None:
    """Reads nothing: one round trip (``SELECT 1``); raises when the database is unreachable."""
    session.execute(text("SELECT 1"))


def beat(session: Session, *, name: str, kind: str, host: str, pid: int, now: datetime) -> None:
    """Writes: the heartbeat of process ``name`` (its row is created at its first beat)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Heartbeat).values(name=name, kind=kind, host=host, pid=pid, started_at=now, beat_at=now)
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": stmt.excluded.beat_at}))


def forget(session: Session, name: str) -> None:
    """Writes: delete the heartbeat of ``name`` (a process that stopped cleanly)."""
    row = session.get(Heartbeat, name)
    if row is not None:
        session.delete(row)


def latest_beats(session: Session) -> dict[str, datetime]:
    """The newest heartbeat of each kind of process (``sender``, ``inbound``)."""
    rows = session.execute(select(Heartbeat.kind, func.max(Heartbeat.beat_at)).group_by(Heartbeat.kind))
    return {kind: at for kind, at in rows}


def heartbeats(session: Session) -> list[Heartbeat]:
    """Every process's heartbeat, newest first."""
    return list(session.scalars(select(Heartbeat).order_by(Heartbeat.beat_at.desc())))
