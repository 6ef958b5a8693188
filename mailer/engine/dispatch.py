"""The engine's front: a :class:`Dispatcher` wires the planner, the send pipeline, the
database writer and the leases for ``mailer run`` (under APScheduler), ``mailer run
--once``, the demo and the tests.

Everything the engine knows lives in the database; a dispatcher holds only caches
(compiled variants per release), its view of each release's circuit breaker and its
journal of heard results, so any number of processes may run. The rooms:

- :mod:`mailer.engine.planner`: start a release (checks, holds, fence, plan segments), finish it;
- :mod:`mailer.engine.sender`: the async send pipeline of a claimed batch;
- :mod:`mailer.engine.outcomes`: what a result does to its row (+ :mod:`mailer.engine.breaker`);
- :mod:`mailer.engine.writer`: the one database writer (a thread) while a batch is sent;
- :mod:`mailer.engine.leases`: lease renewal while sending, the sweep of dead workers' rows;
- :mod:`mailer.engine.journal`: heard results kept until recorded (crash safety).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from mailer.domain.errors import ConfigError, MailerError
from mailer.domain.states import RUNNING_RELEASE
from mailer.engine import journal, leases
from mailer.engine.breaker import Breaker
from mailer.engine.outcomes import Recording
from mailer.engine.planner import Planner, Prepared
from mailer.engine.sender import Batch, Sender, SendProgress
from mailer.engine.writer import Writer, pause_release
from mailer.message import AsyncRenderer, Renderer, RenderWorker
from mailer.message.tokens import Tokens
from mailer.releases import holds, notify, workflow
from mailer.releases.fence import LedgerMarks
from mailer.releases.plan import render_limits, renderer_for
from mailer.runtime import Runtime
from mailer.smtp.transport import Transport
from mailer.store import deliveries as delivery_store
from mailer.store import leases as lease_store
from mailer.store import queue as delivery_queue
from mailer.store.db import transaction
from mailer.store.queue import Claimed

log = logging.getLogger("mailer.engine.dispatch")

#: statuses whose rows are claimed (a planning release's rows go out as they are planned)
_RUNNING = frozenset(s.value for s in RUNNING_RELEASE)


@dataclass
class _Claim:
    """A claimed batch, with what sending it needs."""

    release_id: int
    prepared: Prepared
    rows: list[Claimed]
    #: the release's breaker state when claimed (read again before a batch claimed ahead)
    window: str
    streak: int
    #: the release's deliveries, counted at its first claim when progress is shown
    total: int | None

    @property
    def count(self) -> int:
        return len(self.rows)


@dataclass
class _Turn:
    """Where :meth:`Dispatcher.drain` is in its turn over the sending releases."""

    todo: deque[int] = field(default_factory=deque)
    #: a batch was claimed in this turn (another turn follows)
    worked: bool = True


def worker_name() -> str:
    """A lease owner name unique to this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Plans due releases and sends their deliveries; see the module docstring."""

    def __init__(
        self,
        rt: Runtime,
        transport: Transport,
        *,
        owner: str | None = None,
        on_progress: Callable[[int, SendProgress], None] | None = None,
    ) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.transport = transport
        self.owner = owner or worker_name()
        # Variants compile, and messages render, in render processes under [render] limits;
        # messages off the event loop.
        self.renderer: Renderer = renderer_for(rt.settings)
        self.renders = AsyncRenderer(
            *(
                RenderWorker(self.renderer.templates_dir, self.renderer.sources, render_limits(rt.settings))
                for _ in range(rt.settings.render.processes)
            )
        )
        self.lease = timedelta(seconds=rt.settings.retry.lease_seconds)
        self.on_progress = on_progress
        self.progress: dict[int, SendProgress] = {}
        self.journal = journal.Journal(journal.directory_for(rt.settings), self.owner)
        self.planner = Planner(rt, self.renderer, owner=self.owner)
        self.writer = Writer(rt, self.owner, lease=self.lease)
        self.sender = Sender(
            rt.settings,
            transport,
            self.writer,
            renders=self.renders,
            tokens=Tokens.from_settings(rt.settings),
            journal=self.journal,
            clock=rt.clock,
            on_recorded=self._recorded,
        )
        self._stop: asyncio.Event | None = None

    # -- starting and finishing releases -------------------------------------------------

    def plan_due(self) -> list[int]:
        """Start every approved release whose time has come and plan it to the end (see
        :class:`Planner`); returns the releases started."""
        return self.planner.plan_due()

    def start_due(self) -> list[int]:
        """Start every approved release whose time has come (it is then ``planning``)."""
        return self.planner.start_due()

    async def plan_steps(self, *, stop: asyncio.Event | None = None) -> int:
        """Plan every release with planning steps left, one step at a time in a thread, so
        that the event loop sends the rows planned so far meanwhile; until nothing is
        left or ``stop``. Returns the steps done."""
        steps = 0
        while stop is None or not stop.is_set():
            progressed = False
            for release_id in await asyncio.to_thread(self.planner.planning_ids):
                while (stop is None or not stop.is_set()) and await asyncio.to_thread(
                    self.planner.plan_step, release_id
                ):
                    steps += 1
                    progressed = True
                    await asyncio.sleep(self.planner.rest_due())  # other writers' turn
            if not progressed:
                break
        return steps

    def finish_releases(self) -> list[int]:
        """Finish sending releases with no pending row; returns the releases finished."""
        return self.planner.finish_releases()

    # -- sending -------------------------------------------------------------------------

    async def drain(self, *, stop: asyncio.Event | None = None) -> int:
        """Send every delivery that is due now, one batch per sending release in turn,
        until a whole turn finds none (deferred rows whose retry time has not come are left
        for later). Returns the number of rows claimed.

        While a batch is sent, the next one (the next release's in turn, or this one's
        again) is claimed ahead through the database writer, so the senders never wait for
        a claim. A batch claimed ahead is sent only if its release is still ``sending``
        when its turn comes (checked then, with its breaker state read afresh); after a
        batch that stopped (stop, pause, breaker, rows taken over, an error) it is not
        sent, and its rows go back to the queue with the stopped batch's unstarted ones.
        """
        total = 0
        self._stop = stop
        turn = _Turn()
        async with self._writing():
            current = await self._claim_next(turn)
            while current is not None:
                ahead = asyncio.ensure_future(self._claim_next(turn))
                try:
                    stopped = await self._send(current)
                except BaseException:
                    await self._drop(ahead)
                    raise
                total += current.count
                if stopped or self._stopping():
                    await self._drop(ahead)
                    current = None if self._stopping() else await self._claim_next(turn)
                    continue
                current = await ahead
                if current is not None and not await self.writer.call(partial(self._still_sending, current)):
                    log.info("release %s is no longer sending: its batch claimed ahead goes back", current.release_id)
                    current = await self._claim_next(turn)
        return total

    async def send_batch(self, release_id: int) -> int:
        """Claim one batch of the release's due rows, send them, record the results.
        Returns how many rows were claimed (0: nothing due, or the release is not sending)."""
        self._stop = None
        async with self._writing():
            claim = await self._claim(release_id)
            if claim is None:
                return 0
            await self._send(claim)
        return claim.count

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def _claim_next(self, turn: _Turn) -> _Claim | None:
        """The next batch in turn: the next sending release's with rows due. None when a
        whole turn over the sending releases claimed nothing, or when stopping."""
        while not self._stopping():
            if not turn.todo:
                if not turn.worked:
                    return None
                turn.worked = False
                turn.todo.extend(await self.writer.call(self._sending_releases))
                if not turn.todo:
                    return None
                continue
            claim = await self._claim(turn.todo.popleft())
            if claim is not None:
                turn.worked = True
                return claim
        return None

    def _sending_releases(self) -> list[int]:
        with transaction(self.rt.sessions) as session:
            return delivery_store.running_release_ids(session)

    async def _claim(self, release_id: int) -> _Claim | None:
        """Claim a batch of the release's due rows (on the writer thread); None when none
        was claimed (nothing due, the release not sending or held, its plan unusable)."""
        try:
            prepared = self.planner.prepared(release_id)
        except MailerError as exc:
            reason = f"cannot prepare the release: {exc}"
            await self.writer.call(lambda: pause_release(self.rt, release_id, reason))
            return None
        marks = self.planner.fence.ledger()  # before the database: see mailer.releases.fence
        count = self.on_progress is not None and release_id not in self.progress
        return await self.writer.call(lambda: self._claim_rows(release_id, prepared, marks, count=count))

    def _claim_rows(self, release_id: int, prepared: Prepared, marks: LedgerMarks, *, count: bool) -> _Claim | None:
        """On the writer thread: the claim's transaction (see :meth:`_claim`)."""
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            if delivery_store.release_status(session, release_id) not in _RUNNING:
                return None
            held = holds.ledger_hold(session, release_id, marks, fence=self.planner.fence)
            if held is not None:
                if workflow.hold_sending(session, release_id, held, now=now):
                    log.warning("release %s paused, waits for a person: %s", release_id, held)
                return None
            window, streak = delivery_queue.breaker_state(session, release_id)
            claimed = delivery_queue.claim_batch(
                session,
                release_id=release_id,
                scopes=prepared.scopes,
                owner=self.owner,
                now=self.rt.clock(),
                lease=self.lease,
                limit=self.settings.retry.batch_size,
            )
            if not claimed:
                return None
            # Counted here, between batches, so that showing progress needs no query.
            total = sum(delivery_store.status_counts(session, release_id).values()) if count else None
        return _Claim(release_id, prepared, claimed, window, streak, total)

    def _still_sending(self, claim: _Claim) -> bool:
        """On the writer thread, when a batch claimed ahead comes to be sent: whether its
        release is still ``sending`` (its breaker state is read afresh into ``claim``);
        if not, its rows go back to the queue."""
        with transaction(self.rt.sessions) as session:
            if delivery_store.release_status(session, claim.release_id) not in _RUNNING:
                lease_store.release_leases(session, self.owner, self.rt.clock())
                return False
            claim.window, claim.streak = delivery_queue.breaker_state(session, claim.release_id)
        return True

    async def _drop(self, ahead: asyncio.Future[_Claim | None]) -> None:
        """A batch claimed ahead is not to be sent: wait for its claim, then hand every
        row this worker holds outside the data exchange back to the queue."""
        try:
            claim = await ahead
        except Exception:  # the batch being sent ended first; its error is the one raised
            log.warning("claiming ahead failed", exc_info=True)
            claim = None
        if claim is not None:
            log.info("release %s: the batch claimed ahead goes back to the queue", claim.release_id)
        await self.writer.call(lambda: leases.release_leases(self.rt, self.owner))

    async def _send(self, claim: _Claim) -> bool:
        """Send a claimed batch, record its results; True when it stopped before its end
        (its unstarted rows are back in the queue)."""
        if claim.total is not None:
            self.progress[claim.release_id] = SendProgress(total=claim.total)
        breaker = Breaker(self.settings.breaker, claim.release_id, claim.window, claim.streak)
        batch = Batch(claim.release_id, iter(claim.rows), breaker, claim.count)
        watcher = asyncio.create_task(
            leases.keep_leases(self.writer, claim.release_id, lease=self.lease, on_not_sending=batch.stop)
        )
        try:
            await self.sender.send(batch, claim.prepared, stop=self._stop)
        except ConfigError as exc:
            # The DKIM key became unusable while sending (the render process signs with
            # it): the rows not sent go back to the queue and the release waits for a
            # person, as when the key is unusable at the start (see _claim).
            batch.stopped = True
            self.planner.forget(claim.release_id)
            reason = f"cannot sign its messages: {exc}"
            await self.writer.call(lambda: pause_release(self.rt, claim.release_id, reason))
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
            if batch.stopped:
                await self.writer.call(lambda: leases.release_leases(self.rt, self.owner))
        return batch.stopped

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """The database writer thread runs inside (started here unless it already runs)."""
        if self.writer.running:
            yield
            return
        self.writer.start()
        try:
            yield
        finally:
            await self.writer.stop()
            # The marks' connection is detached from the pool: closed here, so a
            # dispatcher dropped without release_leases() leaks no connection.
            self.writer.close()

    def _recorded(self, recording: Recording) -> None:
        progress = self.progress.setdefault(recording.release_id, SendProgress())
        for decision in recording.decisions:
            progress.attempted += 1
            status = decision.status.value
            progress.by_status[status] = progress.by_status.get(status, 0) + 1
        if self.on_progress is not None:
            self.on_progress(recording.release_id, progress)

    # -- housekeeping ------------------------------------------------------------------

    def renew_leases(self) -> int:
        """Extend the leases of every row this worker holds; returns how many."""
        with transaction(self.rt.sessions) as session:
            return lease_store.renew_leases(session, self.owner, self.rt.clock(), self.lease)

    def sweep(self) -> tuple[int, int]:
        """Dead workers' journals, then expired leases (see :func:`leases.sweep`).
        Returns (requeued, unknown)."""
        return leases.sweep(self.rt, self.journal.path.parent)

    def replay_journals(self) -> int:
        """Record what this host's dead workers heard; returns the rows recorded."""
        return leases.replay_journals(self.rt, self.journal.path.parent)

    def release_leases(self) -> int:
        """Hand rows claimed but not yet in the data exchange back to the queue (on a clean
        stop); closes the in-data marks' connection and the (settled) journal."""
        self.writer.close()
        self.journal.close()
        return leases.release_leases(self.rt, self.owner)

    async def notify(self) -> int:
        """Send queued notification mail to staff (:mod:`mailer.releases.notify`) over a
        connection of its own (never the bulk pool); returns how many went out."""
        return await notify.deliver_queued(self.rt.sessions, self.rt.settings, self.rt.clock())

    async def run_once(self, *, stop: asyncio.Event | None = None) -> int:
        """Everything due now: sweep, plan, send until nothing is due, finish, notify.
        Returns messages attempted."""
        self.sweep()
        self.plan_due()
        attempted = await self.drain(stop=stop)
        self.release_leases()
        self.finish_releases()
        try:
            await self.notify()
        except MailerError as exc:  # notifications wait for the next run
            log.warning("notifications not sent: %s", exc)
        return attempted
