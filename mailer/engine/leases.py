"""Leases: how a live worker keeps its rows, and how the rows of a dead one come back.

**While a batch is sent** (:func:`keep_leases`, a task beside the senders) the batch's
leases are renewed every third of ``retry.lease_seconds``, whatever the relay does, so a
lease shorter than the DATA timeout is allowed; every ``WATCH_SECONDS`` it checks that the
release is still ``sending``, so a pause or cancel stops new rows from starting within
about a second. Both go through the database writer (:mod:`mailer.engine.writer`), never
on the event loop. The in-data mark succeeds only for a row this worker still holds; a
row it lost is never sent.

**Dead workers** (:func:`sweep`): first the journals of this host's dead workers are
replayed (:mod:`mailer.engine.journal`: results they heard but had not recorded), then
expired leases: rows in the data exchange become ``unknown``, the others go back to the
queue. So a killed worker leaves at most one ``unknown`` row per connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from mailer.domain.states import RUNNING_RELEASE
from mailer.engine import journal
from mailer.engine.outcomes import Recording
from mailer.engine.writer import record_results
from mailer.runtime import Runtime
from mailer.store import counters
from mailer.store import leases as lease_store
from mailer.store import queue as delivery_queue
from mailer.store.db import transaction

#: statuses whose rows are sent (a planning release's rows go out as they are planned)
_RUNNING = frozenset(s.value for s in RUNNING_RELEASE)

log = logging.getLogger("mailer.engine.leases")

#: while sending a batch, check this often that its release is still ``sending``
WATCH_SECONDS = 1.0


class LeaseKeeper(Protocol):
    """What :func:`keep_leases` needs (the database writer)."""

    def renew_leases(self) -> Awaitable[int]: ...

    def release_status(self, release_id: int) -> Awaitable[str | None]: ...


async def keep_leases(
    keeper: LeaseKeeper, release_id: int, *, lease: timedelta, on_not_sending: Callable[[], None]
) -> None:
    """Until cancelled: renew this worker's leases every third of ``lease``, and call
    ``on_not_sending`` once when the release is no longer ``sending`` or ``planning``
    (paused, cancelled by anyone)."""
    renew_every = lease.total_seconds() / 3
    tick = min(WATCH_SECONDS, renew_every)
    renewed = time.monotonic()
    sending = True
    while True:
        await asyncio.sleep(tick)
        if time.monotonic() - renewed >= renew_every:
            await keeper.renew_leases()
            renewed = time.monotonic()
        if sending and await keeper.release_status(release_id) not in _RUNNING:
            log.info("release %s is no longer sending: handing unstarted rows back", release_id)
            sending = False
            on_not_sending()


def release_leases(rt: Runtime, owner: str) -> int:
    """Hand the rows ``owner`` claimed but has not started (not in the data exchange) back
    to the queue; returns how many."""
    with transaction(rt.sessions) as session:
        return lease_store.release_leases(session, owner, rt.clock())


def sweep(rt: Runtime, journal_dir: Path) -> tuple[int, int]:
    """Dead workers: first record what their journals in ``journal_dir`` say they heard
    (this host's), then expired leases: requeue, or ``unknown`` inside the data exchange.
    Returns (requeued, unknown)."""
    replay_journals(rt, journal_dir)
    with transaction(rt.sessions) as session:
        requeued, unknown = lease_store.sweep_expired_leases(session, rt.clock())
    if requeued or unknown:  # GET /metrics (pushed with the heartbeat)
        counters.bump("lease_sweeps")
        counters.bump("lease_expiries", requeued, outcome="requeued")
        counters.bump("lease_expiries", unknown, outcome="unknown")
    return requeued, unknown


def replay_journals(rt: Runtime, journal_dir: Path) -> int:
    """Record the results in the journals of this host's dead workers, for the rows they
    still hold (or that were swept to ``unknown`` meanwhile), then delete those journals.
    Returns the rows recorded."""
    replayed = 0
    for owner, path in journal.dead_journals(journal_dir):
        heard = {h.delivery_id: h.result for h in journal.read(path)}
        rows: list[delivery_queue.Claimed] = []
        if heard:
            with transaction(rt.sessions) as session:
                rows = delivery_queue.held_rows(session, owner, list(heard))
        by_release: dict[int, Recording] = {}
        now = rt.clock()
        for row in rows:
            recording = by_release.setdefault(row.release_id, Recording(row.release_id))
            recording.add(row, heard[row.id], now, rt.settings.retry)
        for recording in by_release.values():
            record_results(rt, owner, recording, None)
        path.unlink(missing_ok=True)
        replayed += len(rows)
        if rows:
            log.info("recorded %d results heard by dead worker %s (its journal)", len(rows), owner)
    return replayed
