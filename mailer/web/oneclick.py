"""The web process's one writer of unsubscribes (``POST /u/TOKEN``: RFC 8058 one-click and
the unsubscribe page's buttons).

Each unsubscribe is handed to the writer (one thread on SQLite; a few on PostgreSQL, see
:data:`THREADS`), which writes every unsubscribe waiting at that moment in one
transaction (:func:`mailer.audience.unsubscribes.unsubscribe_many`: one statement per
kind of write for the whole group) and resolves each request's future only after the
commit: an answer of 200 always follows a recorded suppression, event and webhook.

Why one writer (issue 20; ``bench/oneclick_bench.py``): with a transaction per request,
8 concurrent clients during a send contended for SQLite's one write lock through its busy
handler, whose sleeps grow to 100 ms, and sat in the threadpool meanwhile: p50 15 ms, p99
1.3 s. Now the web process asks for SQLite's lock from one connection only, by polling
(``sqlite_lock_poll``, :mod:`mailer.store.db`), holds it once for a whole group, and commits
once for it (one WAL sync on PostgreSQL too); the routes await a future instead of
holding a threadpool thread, so the threadpool stays free for everything else.

A group that fails is written again one unsubscribe a transaction, so one bad request
cannot fail the others; each failure comes back to its route as the exception (a 500,
never a 200). A request whose client went away is still recorded: the POST asked to stop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from mailer.audience import unsubscribes
from mailer.audience.unsubscribes import UnsubscribeChoice, Unsubscribed, UnsubscribeRequest
from mailer.runtime import Runtime
from mailer.store.db import transaction

log = logging.getLogger("mailer.web.oneclick")

#: At most this many unsubscribes in one transaction (the lock is held for all of them).
MAX_GROUP = 64

#: Writer threads by backend. SQLite has one write lock, so one; PostgreSQL locks rows,
#: and there a group's time is mostly round trips, so a few groups overlap (measured: one
#: thread on PostgreSQL answered fewer one-clicks than a transaction per request did).
THREADS = {"sqlite": 1, "postgresql": 4}


@dataclass
class _Job:
    delivery_id: int
    choice: UnsubscribeChoice
    source: str
    future: Future[Unsubscribed | None] = field(default_factory=Future)


class UnsubscribeWriter:
    """The writer thread(s) of one web app (started on first use, ended by :meth:`close`):
    one on SQLite, :data:`THREADS` on PostgreSQL, all taking groups from one queue."""

    def __init__(self, runtime: Runtime, *, max_group: int = MAX_GROUP, threads: int | None = None) -> None:
        self.runtime = runtime
        self.max_group = max_group
        self.threads = threads or THREADS.get(runtime.engine.dialect.name, 1)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._running: list[threading.Thread] = []
        self._closed = False

    async def unsubscribe(self, delivery_id: int, choice: UnsubscribeChoice, *, source: str) -> Unsubscribed | None:
        """Unsubscribe the recipient of ``delivery_id`` (see
        :func:`mailer.audience.unsubscribes.unsubscribe`); returns once it is committed.
        None when the delivery does not exist. Raises what writing it raised
        (:class:`~mailer.domain.errors.StoreError` for a database error)."""
        return await asyncio.wrap_future(self.submit(delivery_id, choice, source=source))

    def submit(self, delivery_id: int, choice: UnsubscribeChoice, *, source: str) -> Future[Unsubscribed | None]:
        """Queue an unsubscribe; the future resolves after its commit."""
        job = _Job(delivery_id, choice, source)
        with self._guard:
            if self._closed:
                raise RuntimeError("the unsubscribe writer is closed")
            if not self._running:
                for n in range(self.threads):
                    thread = threading.Thread(target=self._run, name=f"mailer-unsubscribe-writer-{n}", daemon=True)
                    thread.start()
                    self._running.append(thread)
            self._jobs.put(job)
        return job.future

    def close(self) -> None:
        """Write what is queued, then end the threads. Idempotent."""
        with self._guard:
            self._closed = True
            running, self._running = self._running, []
        for _ in running:
            self._jobs.put(None)  # one each: a thread ends at the first it takes
        for thread in running:
            thread.join()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            group = [job]
            last = False
            while len(group) < self.max_group:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                group.append(more)
            self._write(group)
            if last:
                return

    def _write(self, group: list[_Job]) -> None:
        try:
            results = self._transaction(group)
        except Exception as exc:
            if len(group) > 1:
                log.warning("a group of %d unsubscribes failed (%s): writing them one by one", len(group), exc)
                for job in group:
                    self._write([job])
                return
            log.error("unsubscribe of delivery %s not recorded: %s", group[0].delivery_id, exc)
            _settle(group[0].future, exc)
            return
        for job, result in zip(group, results, strict=True):
            _settle(job.future, result)

    def _transaction(self, group: list[_Job]) -> list[Unsubscribed | None]:
        now = self.runtime.clock()
        with transaction(self.runtime.sessions) as session:
            session.connection(execution_options={"sqlite_lock_poll": True})
            return unsubscribes.unsubscribe_many(
                session, [UnsubscribeRequest(job.delivery_id, job.choice, job.source) for job in group], now=now
            )


def _settle(future: Future[Unsubscribed | None], outcome: Unsubscribed | Exception | None) -> None:
    """Resolve ``future`` unless its request was cancelled (the client went away)."""
    try:
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass
