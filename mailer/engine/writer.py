"""The engine's one database writer while a batch is sent: a thread fed by the senders
through a queue, so the event loop never waits on the database.

What goes through it (:class:`Writer`, the :class:`mailer.engine.sender.Ledger` and the
:class:`mailer.engine.leases.LeaseKeeper` of the sender's loop):

- **in-data marks** (:meth:`Writer.mark_in_data`): the sender awaits an asyncio future
  that the writer resolves once the mark is *committed*, with whether the row was still
  this worker's; only then is the message data sent. Marks jump the queue, and all the
  marks waiting when the writer turns to them are written in one UPDATE and one commit
  (at most one a connection, so a kill still leaves at most one ``unknown`` a connection);
- **results** (:meth:`Writer.record`): a group of decided results per transaction, with
  the hard bounces' suppressions and the merge of the release's breaker state;
- the lease renewal, the "is the release still sending" check and a pause;
- the claims of the next batches (:meth:`Writer.call`, :mod:`mailer.engine.dispatch`).

Everything else is first in, first out. A job's error comes back through its future as
the exception (database errors as :class:`StoreError`). The thread lives from
:meth:`Writer.start` to :meth:`Writer.stop` (one drain of the queue); the marks'
connection is kept across and closed by :meth:`Writer.close`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from mailer.domain.errors import StoreError
from mailer.domain.states import DeliveryStatus, SuppressionReason
from mailer.engine.outcomes import Recording
from mailer.releases import notify, workflow
from mailer.releases.fence import SendFence
from mailer.runtime import Runtime
from mailer.store import deliveries as delivery_store
from mailer.store import leases as lease_store
from mailer.store import queue as delivery_queue
from mailer.store import releases as release_store
from mailer.store import webhooks
from mailer.store.db import transaction
from mailer.store.queue import Decision
from mailer.store.suppressions import add_suppression

log = logging.getLogger("mailer.engine.writer")

T = TypeVar("T")


def record_results(
    rt: Runtime, owner: str, recording: Recording, breaker_marks: str | None, *, fence: SendFence | None = None
) -> tuple[str, int] | None:
    """Record one group of results in one transaction: the rows ``owner`` still holds,
    their events, the hard bounces' suppressions (``bounces.suppress_hard``), the
    release's send ledger and, given ``breaker_marks``, the release's merged breaker state,
    which is returned. After the commit the ledger goes to the send fence."""
    settings = rt.settings
    now = rt.clock()
    shared: tuple[str, int] | None = None
    ledger: tuple[str, int, str | None, int] | None = None
    with transaction(rt.sessions) as session:
        delivery_queue.fast_commit(session)
        written = delivery_queue.record_decisions(session, recording.decisions, owner, now)
        sent = [d for d in recording.decisions if d.delivery_id in written and d.status is DeliveryStatus.SENT]
        webhooks.emit_many(session, "delivery.sent", [_sent_event(recording.release_id, d) for d in sent], now=now)
        if written:
            key, sequence = release_store.advance_ledger(session, recording.release_id, len(written))
            ledger = (release_store.database_identity(session), recording.release_id, key, sequence)
        if settings.bounces.suppress_hard:
            for delivery_id, (email, reply) in recording.hard_bounces.items():
                if delivery_id in written:
                    add_suppression(
                        session, email, reason=SuppressionReason.HARD_BOUNCE, source=f"SMTP {reply[:200]}", now=now
                    )
        if breaker_marks is not None:
            shared = delivery_queue.merge_breaker(
                session, recording.release_id, breaker_marks, keep=settings.breaker.window
            )
    if ledger is not None:
        # After the commit: a crash in between only leaves the fence behind.
        try:
            (fence or SendFence(settings.paths.data_dir)).record_ledger(*ledger)
        except StoreError as exc:
            log.error("release %s: %s (a restored copy of the database may go unnoticed)", ledger[1], exc)
    return shared


def _sent_event(release_id: int, decision: Decision) -> dict[str, object]:
    """The data of a ``delivery.sent`` webhook."""
    return {
        "delivery_id": decision.delivery_id,
        "release_id": release_id,
        "code": decision.code,
        "reply": decision.reply,
    }


def pause_release(rt: Runtime, release_id: int, reason: str) -> None:
    """Pause a sending release (the breaker, our sender refused, an unusable plan)."""
    with transaction(rt.sessions) as session:
        if not workflow.try_pause(
            session,
            release_id,
            actor="mailer (circuit breaker)",
            now=rt.clock(),
            note=reason,
        ):
            return
        if rt.settings.notify.enabled:
            notify.tell_author(
                session,
                release_id,
                kind="paused",
                what="paused",
                text=f"Release {release_id} was paused: {reason}",
                settings=rt.settings,
                now=rt.clock(),
            )
    log.warning("release %s paused: %s", release_id, reason, extra={"release": release_id, "event": "paused"})


@dataclass
class _Mark:
    delivery_id: int
    future: asyncio.Future[bool]


@dataclass
class _Call:
    work: Callable[[], Any]
    future: asyncio.Future[Any]


class Writer:
    """The database writer thread of one worker (``owner``); see the module docstring."""

    def __init__(self, rt: Runtime, owner: str, *, lease: timedelta) -> None:
        self.rt = rt
        self.owner = owner
        self.lease = lease
        self._jobs: queue.SimpleQueue[_Mark | _Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._marker: Connection | None = None
        #: the event loop's own marks connection (SQLite; see _quick_mark)
        self._quick: Connection | None = None
        self._quick_marks = rt.engine.dialect.name == "sqlite"

    # -- on the event loop ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the thread; jobs may be submitted from the running loop until :meth:`stop`."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"mailer-writer-{self.owner}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Let every job submitted so far finish, then end the thread."""
        thread = self._thread
        if thread is None:
            return
        done = self._submit(lambda: None)
        self._jobs.put(None)
        try:
            await done
        finally:
            thread.join()  # it is past its last job: returns at once
            self._thread = None

    def close(self) -> None:
        """Close the marks' connections (the thread's not while it runs)."""
        self._close_quick()
        if self._thread is None:
            self._close_marker()

    def mark_in_data(self, delivery_id: int) -> asyncio.Future[bool]:
        """Commit "this row is in the data exchange"; the future says whether the row was
        still this worker's (False: do not send it). On SQLite the mark is first tried
        right here (:meth:`_quick_mark`); the thread marks it when that cannot be done
        at once."""
        future = self._future()
        quick = self._quick_mark(delivery_id)
        if quick is not None:
            future.set_result(quick)
        else:
            self._jobs.put(_Mark(delivery_id, future))
        return future

    def _quick_mark(self, delivery_id: int) -> bool | None:
        """SQLite: the mark on the event loop's own connection when the write lock is free
        at once (``busy_timeout`` 0: it never waits), committed when it returns, as the
        thread's would be; None when it was not (the lock held by another writer, or an
        error: the thread marks the row, or reports the error). A free lock costs an
        UPDATE of one row (~10 µs), where the hand-over to the thread and back cost two
        thread switches and most of the thread's CPU a message (bench/README.md). The
        connection never checkpoints (``wal_autocheckpoint`` 0: the other connections do),
        so a mark never copies the WAL back while the loop waits. PostgreSQL: always the
        thread (a mark is a network round trip)."""
        if not self._quick_marks:
            return None
        try:
            conn = self._quick_connection()
            return delivery_id in delivery_queue.mark_in_data(conn, [delivery_id], self.owner)
        except DBAPIError as exc:
            if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
                log.debug("a quick in-data mark failed; the writer thread marks the row", exc_info=True)
                self._close_quick()
            return None

    def _quick_connection(self) -> Connection:
        if self._quick is None or self._quick.closed or self._quick.invalidated:
            conn = self.rt.engine.connect()
            conn.detach()  # its settings must not go back into the pool
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout=0")
            raw.execute("PRAGMA wal_autocheckpoint=0")
            self._quick = conn
        return self._quick

    def _close_quick(self) -> None:
        quick, self._quick = self._quick, None
        _close_quietly(quick)

    def record(self, recording: Recording, breaker_marks: str) -> asyncio.Future[tuple[str, int] | None]:
        """Record a group of results (see :func:`record_results`); the future gives the
        release's merged breaker state."""
        return self._submit(lambda: record_results(self.rt, self.owner, recording, breaker_marks))

    def pause(self, release_id: int, reason: str) -> asyncio.Future[None]:
        return self._submit(lambda: pause_release(self.rt, release_id, reason))

    def renew_leases(self) -> asyncio.Future[int]:
        """Extend the leases of every row this worker holds; the future gives how many."""
        return self._submit(lambda: renew_leases(self.rt, self.owner, self.lease))

    def release_status(self, release_id: int) -> asyncio.Future[str | None]:
        return self._submit(lambda: release_status(self.rt, release_id))

    def call(self, work: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``work`` on the writer thread after the jobs before it (the engine's claims)."""
        return self._submit(work)

    def _future(self) -> asyncio.Future[Any]:
        if self._thread is None or self._loop is None:
            raise RuntimeError("the database writer is not running")
        return self._loop.create_future()

    def _submit(self, work: Callable[[], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self._future()
        self._jobs.put(_Call(work, future))
        return future

    # -- on the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        marks: list[_Mark] = []
        calls: deque[_Call | None] = deque()
        while True:
            try:
                job = self._jobs.get(block=not (marks or calls))
                while True:
                    if isinstance(job, _Mark):
                        marks.append(job)
                    else:
                        calls.append(job)
                    job = self._jobs.get_nowait()
            except queue.Empty:
                pass
            if marks:
                self._mark(marks)
                marks = []
                continue
            call = calls.popleft()
            if call is None:
                return
            try:
                value = call.work()
            except BaseException as exc:  # handed to the awaiting coroutine
                self._resolve([(call.future, None, exc)])
            else:
                self._resolve([(call.future, value, None)])

    def _mark(self, marks: list[_Mark]) -> None:
        try:
            conn = self._marker_connection()
            marked = delivery_queue.mark_in_data(conn, [m.delivery_id for m in marks], self.owner)
            conn.commit()
        except DBAPIError as exc:
            self._close_marker()
            error = StoreError(f"database error: {exc.orig or exc}".splitlines()[0])
            error.__cause__ = exc
            self._resolve([(m.future, None, error) for m in marks])
        except BaseException as exc:
            self._resolve([(m.future, None, exc) for m in marks])
        else:
            self._resolve([(m.future, m.delivery_id in marked, None) for m in marks])

    def _resolve(self, outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("database writer: the event loop closed before a result was handed back")

    def _marker_connection(self) -> Connection:
        """A connection kept for marks: no pool checkout or ping per mark; on PostgreSQL
        in autocommit with ``synchronous_commit = off`` (safe against a killed worker;
        only a server crash can drop the last marks), so a mark is one round trip."""
        if self._marker is None or self._marker.closed or self._marker.invalidated:
            conn = self.rt.engine.connect()
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("SET synchronous_commit = off")
                conn.commit()
            conn.detach()  # its session settings must not go back into the pool
            self._marker = conn
        return self._marker

    def _close_marker(self) -> None:
        marker, self._marker = self._marker, None
        _close_quietly(marker)


def _close_quietly(conn: Connection | None) -> None:
    """Close a marks connection; a failure only matters to the log."""
    if conn is None:
        return
    try:
        conn.close()
    except DBAPIError:
        log.debug("closing an in-data marks connection failed", exc_info=True)


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in outcomes:
        if future.done():  # its awaiting coroutine was cancelled
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def renew_leases(rt: Runtime, owner: str, lease: timedelta) -> int:
    """Extend the leases of every row ``owner`` holds; returns how many."""
    with transaction(rt.sessions) as session:
        return lease_store.renew_leases(session, owner, rt.clock(), lease)


def release_status(rt: Runtime, release_id: int) -> str | None:
    """The release's status, read without taking SQLite's write lock."""
    with rt.sessions() as session:
        session.connection(execution_options={"sqlite_deferred": True})
        return delivery_store.release_status(session, release_id)
