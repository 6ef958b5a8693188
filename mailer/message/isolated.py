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


class AsyncRenderer:
    """Messages rendered by a :class:`RenderWorker` without blocking the event loop.

    Requests made while a batch is being rendered are gathered into the next batch; the
    exchange runs in a thread.
    """

    def __init__(self, worker: RenderWorker) -> None:
        self.worker = worker
        self._queue: list[tuple[VariantSpec, RenderJob, asyncio.Future[bytes]]] = []
        self._inflight: list[asyncio.Future[bytes]] = []
        self._pump: asyncio.Task[None] | None = None
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
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        return await future

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
        the render process's present work."""
        queued, self._queue = self._queue, []
        for future in [f for _, _, f in queued] + self._inflight:
            if not future.done():
                future.set_exception(RenderCancelled("rendering was stopped"))
        self.worker.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            batch = [entry for entry in batch if not entry[2].done()]
            if not batch:
                continue
            self._inflight = [future for _, _, future in batch]
            self.batches += 1
            try:
                outcomes = await loop.run_in_executor(None, self.worker.run, [(spec, job) for spec, job, _ in batch])
            except MailerError as exc:
                outcomes = [exc] * len(batch)
            finally:
                self._inflight = []
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, MailerError):
                    future.set_exception(outcome)
                elif outcome.data is None:
                    future.set_exception(MailerError("the render process returned no message"))
                else:
                    future.set_result(outcome.data)
