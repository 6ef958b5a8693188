"""`mailer run`: APScheduler 3 interval jobs around a :class:`Dispatcher`.

APScheduler only triggers work; every fact lives in the database, so any number of
processes may run. On PostgreSQL one process at a time is the leader (a session-level
advisory lock held on its own connection) and does the planning and housekeeping; every
process sends. If the leader dies its connection closes, the lock is freed, and another
process takes over at its next tick.

Leases are renewed by the dispatcher itself while it holds rows (see
:mod:`mailer.engine.leases`). When the relay cannot be reached the send job backs off — 1 s,
2 s, 4 s ... up to ``MAX_BACKOFF_SECONDS`` — and logs one line per failed try.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Connection, text

from mailer.domain.errors import MailerError, TransportError
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime

log = logging.getLogger("mailer.engine.scheduler")

LEADER_LOCK_KEY = 0x6D61696C  # "mail"
#: the longest wait between two tries of an unreachable relay
MAX_BACKOFF_SECONDS = 60.0


class _SkippedRunFilter(logging.Filter):
    """Drops APScheduler's "maximum number of running instances reached" warning. Each job
    runs one instance at a time (``max_instances=1``) on purpose: a tick that finds the
    send job still sending is expected, and the running one carries on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIPPED_RUNS = _SkippedRunFilter()


def quiet_skipped_runs() -> None:
    """Keep APScheduler's skipped-run warnings out of the log (idempotent)."""
    logger = logging.getLogger("apscheduler.scheduler")
    if _SKIPPED_RUNS not in logger.filters:
        logger.addFilter(_SKIPPED_RUNS)


class Backoff:
    """A growing delay after consecutive failures (doubling from 1 s), reset by a success."""

    def __init__(self, *, first: float = 1.0, most: float = MAX_BACKOFF_SECONDS) -> None:
        self.first = first
        self.most = most
        self.failures = 0
        self._next_try = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next_try

    def failed(self) -> float:
        """Count a failure; returns the seconds until the next try."""
        delay: float = min(self.first * 2.0**self.failures, self.most)
        self.failures += 1
        self._next_try = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self._next_try = 0.0


class Leadership:
    """Who plans and sweeps: always this process on SQLite; the lock holder on PostgreSQL."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._conn: Connection | None = None
        self.is_leader = rt.engine.dialect.name != "postgresql"

    def refresh(self) -> bool:
        if self.rt.engine.dialect.name != "postgresql" or self.is_leader:
            return self.is_leader
        try:
            if self._conn is None:
                self._conn = self.rt.engine.connect()
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}).scalar()
            self._conn.commit()
            self.is_leader = bool(got)
        except Exception:  # a lost connection: try again next tick
            log.exception("leader election failed")
            self.close()
        return self.is_leader

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                self.is_leader = self.rt.engine.dialect.name != "postgresql"


#: A job of the caller's that runs beside the engine's: (name, every N seconds, coroutine).
PeriodicJob = tuple[str, float, Callable[[], Awaitable[None]]]


async def run_forever(
    dispatcher: Dispatcher,
    *,
    tick_seconds: float = 5.0,
    send_seconds: float = 1.0,
    extra_jobs: Sequence[PeriodicJob] = (),
) -> None:
    """Run until SIGINT/SIGTERM; then stop claiming, finish in-flight messages, release leases.

    ``extra_jobs`` run on the same scheduler (the heartbeat, webhook deliveries), one
    instance at a time each, their failures logged like the engine's."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    leadership = Leadership(dispatcher.rt)

    running: set[str] = set()

    def tracked(name: str, body: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            if stop.is_set():
                return
            running.add(name)
            try:
                await body()
            except MailerError as exc:  # said in one line; the next tick tries again
                log.warning("job %s failed: %s", name, exc)
            except Exception:  # keep the process alive; the next tick tries again
                log.exception("job %s failed", name)
            finally:
                running.discard(name)

        return job

    async def tick() -> None:
        if leadership.refresh():
            dispatcher.sweep()
            dispatcher.start_due()
            # in steps, off the event loop: the send job sends the rows planned so far
            await dispatcher.plan_steps(stop=stop)
            dispatcher.finish_releases()
            await dispatcher.notify()

    relay = Backoff()

    async def send() -> None:
        if not relay.due():
            return
        try:
            await dispatcher.drain(stop=stop)
        except TransportError as exc:
            delay = relay.failed()
            log.warning("relay unavailable: %s; next try in %gs", exc, delay)
            return
        relay.succeeded()

    quiet_skipped_runs()
    scheduler = AsyncIOScheduler()
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True}
    start = datetime.now().astimezone()
    scheduler.add_job(tracked("tick", tick), "interval", seconds=tick_seconds, next_run_time=start, **common)
    scheduler.add_job(tracked("send", send), "interval", seconds=send_seconds, next_run_time=start, **common)
    for name, seconds, body in extra_jobs:
        scheduler.add_job(tracked(name, body), "interval", seconds=seconds, next_run_time=start, **common)
    # Results a dead worker of this host heard (the leader also does it before each sweep).
    try:
        dispatcher.replay_journals()
    except MailerError as exc:
        log.warning("replaying dead workers' journals failed (the next sweep tries again): %s", exc)
    scheduler.start()
    try:
        await stop.wait()
    finally:
        # APScheduler 3.11's shutdown() cancels running jobs even with wait=True: pause
        # first, let running jobs finish, then shut down.
        scheduler.pause()
        while running:
            await asyncio.sleep(0.05)
        scheduler.shutdown(wait=False)
        dispatcher.release_leases()
        leadership.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
