"""Counters of one process (breaker trips, lease sweeps, inbound messages by kind...),
pushed to the database so that ``mailer web`` serves every process's counts at
GET /metrics: with several sender machines, one scrape target sees them all.

A process counts in memory with :func:`bump` (cheap, no I/O, any thread); its heartbeat
calls :func:`flush`, which adds what was counted since the last flush to the shared rows.
The totals are summed over all processes and never lowered, as Prometheus counters are.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.store.tables import OpsCounter

#: (name, labels) → amount counted in this process since the last flush
_pending: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


def label_text(labels: Mapping[str, str]) -> str:
    """``{"kind": "hard"}`` → ``"kind=hard"`` (sorted, the stored form)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_labels(value: str) -> dict[str, str]:
    """The inverse of :func:`label_text`."""
    return dict(part.split("=", 1) for part in value.split(",") if part)


def bump(name: str, amount: float = 1.0, **labels: str) -> None:
    """Count ``amount`` of ``name`` in this process (pushed at the next :func:`flush`)."""
    key = (name, label_text(labels))
    with _lock:
        _pending[key] = _pending.get(key, 0.0) + amount


def take_pending() -> dict[tuple[str, str], float]:
    """What was counted since the last call (and forget it)."""
    with _lock:
        taken = dict(_pending)
        _pending.clear()
    return taken


def restore_pending(taken: Mapping[tuple[str, str], float]) -> None:
    """Put back counts whose flush failed, so the next flush carries them."""
    with _lock:
        for key, amount in taken.items():
            _pending[key] = _pending.get(key, 0.0) + amount


def add_counts(session: Session, counts: Mapping[tuple[str, str], float], *, now: datetime) -> None:
    """Writes: add ``counts`` to the shared counter rows (created at their first count)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for (name, labels), amount in sorted(counts.items()):
        stmt = insert(OpsCounter).values(name=name, labels=labels, value=amount, updated_at=now)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["name", "labels"],
                set_={"value": OpsCounter.value + stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
        )


def all_counts(session: Session) -> list[tuple[str, dict[str, str], float]]:
    """Every shared counter: (name, labels, value)."""
    rows = session.execute(select(OpsCounter.name, OpsCounter.labels, OpsCounter.value).order_by(OpsCounter.name))
    return [(name, parse_labels(labels), float(value)) for name, labels, value in rows]
