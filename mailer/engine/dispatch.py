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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from mailer.domain.errors import MailerError
from mailer.domain.states import RUNNING_RELEASE
from mailer.engine import journal, leases
from mailer.engine.breaker import Breaker
from mailer.engine.outcomes import Recording
from mailer.engine.planner import Planner
from mailer.engine.sender import Batch, Sender, SendProgress
from mailer.engine.writer import Writer, pause_release
from mailer.message import AsyncRenderer, Renderer, RenderWorker
from mailer.message.tokens import Tokens
from mailer.releases import holds, notify, workflow
from mailer.releases.plan import render_limits, renderer_for
from mailer.runtime import Runtime
from mailer.smtp.transport import Transport
from mailer.store import deliveries as delivery_store
from mailer.store import leases as lease_store
from mailer.store import queue as delivery_queue
from mailer.store.db import transaction

log = logging.getLogger("mailer.engine.dispatch")

#: statuses whose rows are claimed (a planning release's rows go out as they are planned)
_RUNNING = frozenset(s.value for s in RUNNING_RELEASE)


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
            RenderWorker(self.renderer.templates_dir, self.renderer.sources, render_limits(rt.settings))
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
        """Send every delivery that is due now, release after release, until none is left
        (deferred rows whose retry time has not come are left for later). Returns the
        number of messages attempted."""
        total = 0
        self._stop = stop
        async with self._writing():
            while stop is None or not stop.is_set():
                with transaction(self.rt.sessions) as session:
                    releases = delivery_store.running_release_ids(session)
                worked = 0
                for release_id in releases:
                    if stop is not None and stop.is_set():
                        break
                    worked += await self.send_batch(release_id)
                total += worked
                if worked == 0:
                    break
        return total

    async def send_batch(self, release_id: int) -> int:
        """Claim one batch of the release's due rows, send them, record the results.
        Returns how many rows were claimed (0: nothing due, or the release is not sending)."""
        try:
            prepared = self.planner.prepared(release_id)
        except MailerError as exc:
            pause_release(self.rt, release_id, f"cannot prepare the release: {exc}")
            return 0
        total: int | None = None
        now = self.rt.clock()
        marks = self.planner.fence.ledger()  # before the database: see mailer.releases.fence
        with transaction(self.rt.sessions) as session:
            if delivery_store.release_status(session, release_id) not in _RUNNING:
                return 0
            held = holds.ledger_hold(session, release_id, marks, fence=self.planner.fence)
            if held is not None:
                if workflow.hold_sending(session, release_id, held, now=now):
                    log.warning("release %s paused, waits for a person: %s", release_id, held)
                return 0
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
            if claimed and self.on_progress is not None and release_id not in self.progress:
                # Counted here, between batches, so that showing progress needs no query.
                total = sum(delivery_store.status_counts(session, release_id).values())
        if not claimed:
            return 0
        if total is not None:
            self.progress[release_id] = SendProgress(total=total)
        batch = Batch(
            release_id, iter(claimed), Breaker(self.settings.breaker, release_id, window, streak), len(claimed)
        )
        async with self._writing():
            watcher = asyncio.create_task(
                leases.keep_leases(self.writer, release_id, lease=self.lease, on_not_sending=batch.stop)
            )
            try:
                await self.sender.send(batch, prepared, stop=self._stop)
            finally:
                watcher.cancel()
                with suppress(asyncio.CancelledError):
                    await watcher
                if batch.stopped:
                    leases.release_leases(self.rt, self.owner)
        return len(claimed)

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
