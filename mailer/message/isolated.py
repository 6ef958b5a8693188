"""Rendering in a separate process, under a time limit, a size cap and a memory limit:
the faces callers use.

A template is code a user wrote; the sandbox stops it from reaching out, not from running
for ever (three nested loops) or filling memory. The only sure way to stop a render is to
kill the process it runs in, so every render of user-authored content (preview, submit,
proof, send) happens in a *render process* (:mod:`mailer.message.worker` runs it,
:mod:`mailer.message.child` is it, :mod:`mailer.message.limits` says what it may use):

- a message over ``render.max_message_bytes`` is refused; a job running past
  ``render.time_limit`` is killed with its process; a template that allocates more than
  ``render.memory_limit_mb`` gets a MemoryError, reported as such (and the child is
  replaced).

Synchronous callers (CLI, web) use :class:`IsolatedRenderer`, whose ``compile`` returns an
:class:`IsolatedVariant` with the same ``render``/``render_parts`` as an in-process
variant. The delivery engine uses :class:`AsyncRenderer`: requests made while a batch is
in the render process are gathered into the next batch, and the waiting happens in a
thread, so the event loop never waits on a template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from mailer.domain.errors import MailerError
from mailer.message.exchange import MAX_BATCH
from mailer.message.limits import RenderCancelled, RenderLimits
from mailer.message.spec import Rendered, RenderJob, Variant, VariantSpec
from mailer.message.templates import Renderer
from mailer.message.worker import RenderWorker


class IsolatedVariant(Variant):
    """A variant compiled in the render process; renders there (same API as in-process,
    and :meth:`render` also raises :class:`~mailer.message.limits.RenderLimitError`)."""

    def __init__(self, spec: VariantSpec, worker: RenderWorker) -> None:
        self.spec = spec
        self._worker = worker

    def run(self, job: RenderJob) -> Rendered:
        """``job`` rendered in the render process; raises the error it failed with."""
        [outcome] = self._worker.run([(self.spec, job)])
        if isinstance(outcome, MailerError):
            raise outcome
        return outcome


class IsolatedRenderer(Renderer):
    """A :class:`Renderer` whose variants compile and render in a render process."""

    def __init__(self, templates_dir: Path, *, limits: RenderLimits, sources: Mapping[str, str] | None = None) -> None:
        super().__init__(templates_dir, sources=sources)
        self.limits = limits
        self.worker = RenderWorker(templates_dir, self.sources, limits)

    def compile(self, spec: VariantSpec) -> IsolatedVariant:
        """Compile ``spec`` in the render process; raises what :meth:`Renderer.compile`
        raises, and :class:`RenderLimitError` when compiling takes too long."""
        [outcome] = self.worker.run([(spec, None)])
        if isinstance(outcome, MailerError):
            raise outcome
        return IsolatedVariant(spec, self.worker)

    def close(self) -> None:
        """Kill the render process."""
        self.worker.close()


# ------------------------------------------------------------------ asynchronous use

#: With several render processes, requests waiting (beyond the batches in flight) before
#: another process takes a batch of them.
SPLIT_AT = 32


class AsyncRenderer:
    """Messages rendered by one or more :class:`RenderWorker` without blocking the event loop.

    Requests made while a batch is being rendered are gathered into the next batch; the
    exchange runs in a thread. With several workers (``render.processes``), the waiting
    requests are shared with the idle ones when there are at least :data:`SPLIT_AT` for
    each, and an idle one takes a batch once that many wait behind the batches in flight
    (fewer wait for the next free worker: small batches cost more a message).
    """

    def __init__(self, worker: RenderWorker, *more: RenderWorker) -> None:
        #: the first render process (the only one unless ``more``)
        self.worker = worker
        self.workers = (worker, *more)
        self._queue: list[tuple[VariantSpec, RenderJob, asyncio.Future[bytes]]] = []
        self._inflight: dict[int, list[asyncio.Future[bytes]]] = {}
        self._pumps: list[asyncio.Task[None] | None] = [None] * len(self.workers)
        self._watched: asyncio.Event | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.batches = 0  # requests sent (benchmarks)

    async def render(self, spec: VariantSpec, job: RenderJob, *, stop: asyncio.Event | None = None) -> bytes:
        """The message bytes of ``job`` (which must have a ``message_id``).

        Raises what :meth:`IsolatedVariant.render` raises, and :class:`RenderCancelled`
        (the job was not rendered) once ``stop`` is set.
        """
        if stop is not None:
            if stop.is_set():
                raise RenderCancelled("rendering was stopped")
            self._watch(stop)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._queue.append((spec, job, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        """Start a pump on an idle worker when none runs, or when enough requests wait."""
        idle = [i for i, pump in enumerate(self._pumps) if pump is None or pump.done()]
        if not idle:
            return
        if len(idle) < len(self.workers) and len(self._queue) < SPLIT_AT:
            return  # a batch is in flight: the next one waits for it unless it is big
        self._pumps[idle[0]] = asyncio.create_task(self._run(idle[0]))

    def _share(self, index: int) -> int:
        """How many waiting requests worker ``index``, about to send a batch, takes: all
        (up to :data:`MAX_BATCH`), or an even share with the workers that have no batch in
        flight when there are at least :data:`SPLIT_AT` for each."""
        waiting = len(self._queue)
        free = sum(1 for other in range(len(self.workers)) if other != index and other not in self._inflight)
        if free and waiting >= 2 * SPLIT_AT:
            waiting = max(SPLIT_AT, -(-waiting // (free + 1)))
        return min(waiting, MAX_BATCH)

    def _watch(self, stop: asyncio.Event) -> None:
        if stop is self._watched and self._watcher is not None and not self._watcher.done():
            return
        if self._watcher is not None:
            self._watcher.cancel()
        self._watched = stop

        async def watch() -> None:
            await stop.wait()
            self.cancel()

        self._watcher = asyncio.create_task(watch())

    def cancel(self) -> None:
        """Fail every queued and in-flight request with :class:`RenderCancelled` and stop
        the render processes' present work."""
        queued, self._queue = self._queue, []
        inflight = [future for futures in self._inflight.values() for future in futures]
        for future in [f for _, _, f in queued] + inflight:
            if not future.done():
                future.set_exception(RenderCancelled("rendering was stopped"))
        for worker in self.workers:
            worker.cancel()

    def close(self) -> None:
        """Kill the render processes (a later request starts new ones)."""
        for worker in self.workers:
            worker.close()

    async def _run(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        worker = self.workers[index]
        while self._queue:
            share = self._share(index)
            batch, self._queue = self._queue[:share], self._queue[share:]
            batch = [entry for entry in batch if not entry[2].done()]
            if not batch:
                continue
            if self._queue:
                self._kick()  # the rest of the requests: another worker may take them
            self._inflight[index] = [future for _, _, future in batch]
            self.batches += 1
            try:
                outcomes = await loop.run_in_executor(None, worker.run, [(spec, job) for spec, job, _ in batch])
            except MailerError as exc:
                outcomes = [exc] * len(batch)
            finally:
                self._inflight.pop(index, None)
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, MailerError):
                    future.set_exception(outcome)
                elif outcome.data is None:
                    future.set_exception(MailerError("the render process returned no message"))
                else:
                    future.set_result(outcome.data)
