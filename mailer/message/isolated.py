"""Rendering in a separate process, under a time limit, a size cap and a memory limit.

A template is code a user wrote; the sandbox stops it from reaching out, not from running
for ever (three nested loops) or filling memory. The only sure way to stop a render is to
kill the process it runs in, so every render of user-authored content (preview, submit,
proof, send) happens in a *render process*:

- one long-lived child per :class:`RenderWorker` (``python -m mailer.message.child``, a
  fresh interpreter: ~0.15 s to start, nothing of the parent's state inherited). It
  keeps the variants it compiled and renders a batch of jobs per request, so a message
  costs a share of one round trip, not a process;
- before each job (and before compiling a variant it has not seen) the child writes the
  job's index and start time into shared memory. The parent waits for the batch's answer
  and kills the child (SIGKILL) as soon as one job has run longer than
  :attr:`RenderLimits.time_limit`; it then knows which job it was: that job fails with
  :class:`RenderLimitError`, and the rest of the batch goes to a fresh child;
- a message over :attr:`RenderLimits.max_message_bytes` is refused, and the child's
  address space is capped (``RLIMIT_AS``) at its size after start-up plus
  :attr:`RenderLimits.memory_limit_mb`, so a template that allocates more gets a
  MemoryError, reported as such (and the child is replaced);
- the child ignores SIGINT (Ctrl-C belongs to the parent, which stops the child); a thread
  of it exits the process when the parent's end of a "lifeline" pipe closes, so a hung
  render cannot outlive a killed parent.

Synchronous callers (CLI, web) use :class:`IsolatedRenderer`, whose ``compile`` returns an
:class:`IsolatedVariant` with the same ``render``/``render_parts`` as an in-process
variant. The delivery engine uses :class:`AsyncRenderer`: requests made while a batch is
in the render process are gathered into the next batch, and the waiting happens in a
thread, so the event loop never waits on a template.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import mmap
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import mailer
from mailer.domain.errors import HeaderInjectionError, InputError, MailerError, TemplateError
from mailer.message.mime import CompiledVariant
from mailer.message.spec import Recipient, RenderedParts, VariantSpec
from mailer.message.templates import Renderer

#: How long a fresh render process may take to say it is ready.
START_TIMEOUT = 30.0
#: Most jobs sent to the render process in one request.
MAX_BATCH = 200
_MB = 1024 * 1024


@dataclass(frozen=True)
class RenderLimits:
    """What one message's render may use (the ``[render]`` settings)."""

    #: seconds one message (or compiling one variant) may take
    time_limit: float = 5.0
    #: bytes one message may have
    max_message_bytes: int = 2 * _MB
    #: memory the render process may allocate beyond its own start-up size
    memory_limit_mb: int = 512


class RenderLimitError(TemplateError):
    """A render went over a limit of the render process; ``limit`` names the setting."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class RenderCancelled(MailerError):
    """The render was stopped from outside (shutdown): the job was not rendered."""


def _size(n: float) -> str:
    return f"{n / _MB:.3g} MB"


def _time_error(limits: RenderLimits) -> RenderLimitError:
    return RenderLimitError(
        f"template took longer than the {limits.time_limit:g} s limit (render.time_limit)",
        limit="render.time_limit",
    )


def _memory_error(limits: RenderLimits) -> RenderLimitError:
    return RenderLimitError(
        f"template needed more than the {limits.memory_limit_mb} MB memory limit (render.memory_limit_mb)",
        limit="render.memory_limit_mb",
    )


def _size_error(size: int, limits: RenderLimits) -> RenderLimitError:
    return RenderLimitError(
        f"message of {_size(size)} is over the {_size(limits.max_message_bytes)} limit (render.max_message_bytes)",
        limit="render.max_message_bytes",
    )


# ----------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class RenderJob:
    """One message to render. Without ``message_id`` only the parts are rendered (a
    preview whose unsubscribe link cannot be real); with ``parts`` both."""

    recipient: Recipient
    to_addr: str
    unsubscribe_url: str
    message_id: str | None = None
    unsubscribe_mailto: str | None = None
    date: datetime | None = None
    parts: bool = False


@dataclass(frozen=True)
class Rendered:
    """What a job gave: the message bytes and/or the parts, as the job asked."""

    data: bytes | None
    parts: RenderedParts | None


#: The answer for one job: what it gave, or the error it raised.
Outcome = Rendered | MailerError

_ERROR_TYPES: dict[str, type[MailerError]] = {
    cls.__name__: cls
    for cls in (MailerError, TemplateError, RenderLimitError, InputError, HeaderInjectionError, RenderCancelled)
}


def _pack_error(exc: MailerError) -> tuple[str, str, str, dict[str, Any]]:
    """An error as plain data: the classes' keyword-only constructors do not unpickle."""
    name = type(exc).__name__ if type(exc).__name__ in _ERROR_TYPES else "MailerError"
    return ("error", name, str(exc), dict(vars(exc)))


def _unpack_error(packed: tuple[str, str, str, dict[str, Any]]) -> MailerError:
    _, name, message, fields = packed
    cls = _ERROR_TYPES.get(name, MailerError)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error


# --------------------------------------------------------------------- the child side

# Shared progress slots: the job being worked on, 1.0 while compiling, and the
# monotonic start time of the step (0.0: between steps).
_INDEX, _PHASE, _STARTED = 0, 1, 2
_COMPILE = 1.0
_PROGRESS_BYTES = 3 * ctypes.sizeof(ctypes.c_double)


def _exit_with_parent(lifeline: Connection) -> None:
    """Exit as soon as the parent's end of ``lifeline`` closes (the parent closed it, or
    died): a thread, since the main thread may be deep in a template that never returns
    to read its pipe; a hung render must not outlive a SIGKILLed ``mailer run``."""

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv_bytes()
        os._exit(0)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def _limit_memory(extra_mb: int) -> None:
    """Cap this process's address space at its present size plus ``extra_mb``."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    limit = pages * os.sysconf("SC_PAGE_SIZE") + extra_mb * _MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _render_job(variant: CompiledVariant, job: RenderJob, limits: RenderLimits) -> Rendered:
    parts = None
    data = None
    size = 0
    if job.parts or job.message_id is None:
        parts = variant.render_parts(job.recipient, to_addr=job.to_addr, unsubscribe_url=job.unsubscribe_url)
        size = sum(len(p.encode("utf-8", "surrogatepass")) for p in (parts.subject, parts.text, parts.html))
    if job.message_id is not None:
        data = variant.render(
            job.recipient,
            to_addr=job.to_addr,
            message_id=job.message_id,
            unsubscribe_url=job.unsubscribe_url,
            unsubscribe_mailto=job.unsubscribe_mailto,
            date=job.date or datetime.now().astimezone(),
        )
        size = len(data)
    if size > limits.max_message_bytes:
        raise _size_error(size, limits)
    return Rendered(data, parts)


def child_main(conn_fd: int, lifeline_fd: int, progress_fd: int) -> None:
    """The render process (``python -m mailer.message.child``): compile and render what
    the parent asks, one batch at a time.

    First message: ``(templates_dir, sources, limits)``. Then each request is
    ``(forget, [(spec_id, spec)], [(spec_id, job or None)])`` (None: compile only); each
    answer ``(healthy, [Rendered | packed error])``, ``healthy`` False asking the parent
    for a fresh process (after a MemoryError).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(conn_fd)
    _exit_with_parent(Connection(lifeline_fd, writable=False))
    progress = (ctypes.c_double * 3).from_buffer(mmap.mmap(progress_fd, _PROGRESS_BYTES))
    templates_dir, sources, limits = conn.recv()
    _limit_memory(limits.memory_limit_mb)
    renderer = Renderer(templates_dir, sources=sources)
    specs: dict[int, VariantSpec] = {}
    compiled: dict[int, CompiledVariant | MailerError] = {}
    conn.send("ready")
    while True:
        try:
            forget, new_specs, jobs = conn.recv()
        except (EOFError, OSError):
            return
        if forget:
            specs.clear()
            compiled.clear()
        specs.update(new_specs)
        healthy = True
        results: list[Rendered | tuple[str, str, str, dict[str, Any]]] = []
        for index, (spec_id, job) in enumerate(jobs):
            progress[_STARTED] = 0.0
            progress[_INDEX] = float(index)
            try:
                variant = compiled.get(spec_id)
                if variant is None:
                    progress[_PHASE] = _COMPILE
                    progress[_STARTED] = time.monotonic()
                    try:
                        variant = renderer.compile_here(specs[spec_id])
                    except MailerError as exc:
                        variant = exc
                    compiled[spec_id] = variant
                progress[_PHASE] = 0.0
                progress[_STARTED] = time.monotonic()
                if isinstance(variant, MailerError):
                    raise variant
                results.append(Rendered(None, None) if job is None else _render_job(variant, job, limits))
            except MemoryError:
                healthy = False
                results.append(_pack_error(_memory_error(limits)))
            except MailerError as exc:
                if isinstance(exc.__cause__, MemoryError):
                    healthy = False
                    exc = _memory_error(limits)
                results.append(_pack_error(exc))
            except Exception as exc:  # a bug, not the template's fault; still one job's error
                results.append(_pack_error(TemplateError(f"{type(exc).__name__}: {exc}")))
        progress[_STARTED] = 0.0
        conn.send((healthy, results))


# -------------------------------------------------------------------- the parent side


def _kill(holder: list[subprocess.Popen[bytes] | None]) -> None:
    proc = holder[0]
    holder[0] = None
    if proc is not None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def _child_env() -> dict[str, str]:
    """The environment of a render process: this one's, importing the same ``mailer``."""
    env = dict(os.environ)
    here = str(Path(mailer.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


@dataclass
class _Failure:
    """An exchange that ended early: ``index`` (in the batch) failed with ``error``;
    ``whole_spec``: it failed while compiling, so every job of that spec fails alike."""

    index: int
    error: MailerError
    whole_spec: bool = False


class RenderWorker:
    """One render process and the exchange with it (see the module docstring).

    Thread-safe: one exchange at a time. The process starts at the first request, is
    replaced after a kill, and is killed when this object is closed or collected.
    """

    def __init__(self, templates_dir: Path, sources: Mapping[str, str], limits: RenderLimits) -> None:
        self.templates_dir = templates_dir
        self.sources = dict(sources)
        self.limits = limits
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._holder: list[subprocess.Popen[bytes] | None] = [None]
        self._conn: Connection | None = None
        self._lifeline: Connection | None = None
        self._progress: Any = None
        self._spec_ids: dict[VariantSpec, int] = {}
        self._known: set[int] = set()  # spec ids the present process has
        self._forget = False
        self._started = False
        self.restarts = 0  # processes started after the first (tests, benchmarks)
        self._finalizer = weakref.finalize(self, _kill, self._holder)

    # -- lifecycle ------------------------------------------------------------------

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        lifeline_r, lifeline_w = os.pipe()
        with tempfile.TemporaryFile() as shared:
            shared.truncate(_PROGRESS_BYTES)
            progress_map = mmap.mmap(shared.fileno(), _PROGRESS_BYTES)
            fds = (theirs.fileno(), lifeline_r, shared.fileno())
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "mailer.message.child", *map(str, fds)],
                    pass_fds=fds,
                    env=_child_env(),
                    stdin=subprocess.DEVNULL,
                    close_fds=True,
                )
            except OSError as exc:
                progress_map.close()
                raise MailerError(f"the render process did not start: {exc}") from exc
            finally:
                theirs.close()
                os.close(lifeline_r)
        if self._started:
            self.restarts += 1
        self._started = True
        conn = Connection(ours.detach())
        self._holder[0], self._conn, self._lifeline = proc, conn, Connection(lifeline_w, readable=False)
        self._progress = (ctypes.c_double * 3).from_buffer(progress_map)
        self._known = set()
        self._forget = False
        try:
            conn.send((self.templates_dir, self.sources, self.limits))
            ready = conn.poll(START_TIMEOUT) and conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._stop_process()
            raise MailerError(f"the render process did not start (exit code {proc.returncode})")

    def _stop_process(self) -> None:
        _kill(self._holder)
        for conn in (self._conn, self._lifeline):
            if conn is not None:
                conn.close()
        self._conn = self._lifeline = None

    def close(self) -> None:
        """Kill the render process (a later request starts a new one)."""
        with self._lock:
            self._stop_process()

    def cancel(self) -> None:
        """Stop the exchange in progress at once (from any thread): its jobs not yet
        answered come back as :class:`RenderCancelled`."""
        self._cancel.set()
        proc = self._holder[0]
        if proc is not None and proc.poll() is None:
            proc.kill()

    @property
    def pid(self) -> int | None:
        """The render process's id, when one runs."""
        proc = self._holder[0]
        return proc.pid if proc is not None and proc.poll() is None else None

    # -- requests -------------------------------------------------------------------

    def run(self, jobs: Sequence[tuple[VariantSpec, RenderJob | None]]) -> list[Outcome]:
        """Render ``jobs`` (a None job only compiles its spec), in order.

        Each outcome is what its job gave or the MailerError it failed with: a
        TemplateError, HeaderInjectionError or InputError from the template or the
        values, a :class:`RenderLimitError` for a job over a limit, a
        :class:`RenderCancelled` after :meth:`cancel`. Raises MailerError only when no
        render process can be started.
        """
        with self._lock:
            self._cancel.clear()
            results: list[Outcome | None] = [None] * len(jobs)
            pending = list(range(len(jobs)))
            while pending:
                if self._cancel.is_set():
                    for i in pending:
                        results[i] = RenderCancelled("rendering was stopped")
                    break
                batch = pending[:MAX_BATCH]
                outcome = self._exchange([jobs[i] for i in batch])
                if isinstance(outcome, list):
                    for i, result in zip(batch, outcome, strict=True):
                        results[i] = result
                    pending = pending[len(batch) :]
                    continue
                if isinstance(outcome.error, RenderCancelled):
                    for i in pending:
                        results[i] = outcome.error
                    break
                culprit = batch[outcome.index]
                failed = {culprit}
                if outcome.whole_spec:
                    failed |= {i for i in pending if jobs[i][0] == jobs[culprit][0]}
                for i in failed:
                    results[i] = outcome.error
                pending = [i for i in pending if i not in failed]
        done: list[Outcome] = []
        for entry in results:
            assert entry is not None
            done.append(entry)
        return done

    def _spec_id(self, spec: VariantSpec) -> int:
        spec_id = self._spec_ids.get(spec)
        if spec_id is None:
            if len(self._spec_ids) >= 256:  # one release has a few; forget old releases
                self._spec_ids.clear()
                self._known = set()
                self._forget = True
            spec_id = self._spec_ids[spec] = len(self._spec_ids)
        return spec_id

    def _exchange(self, jobs: list[tuple[VariantSpec, RenderJob | None]]) -> list[Outcome] | _Failure:
        """Send one batch and wait for its answer, killing the process at a job's deadline."""
        if self._holder[0] is None or self._conn is None or self._holder[0].poll() is not None:
            self._stop_process()
            self._start()
        conn = self._conn
        assert conn is not None
        wire: list[tuple[int, RenderJob | None]] = []
        new_specs: list[tuple[int, VariantSpec]] = []
        for spec, job in jobs:
            spec_id = self._spec_id(spec)
            if spec_id not in self._known:
                self._known.add(spec_id)
                new_specs.append((spec_id, spec))
            wire.append((spec_id, job))
        try:
            conn.send((self._forget, new_specs, wire))
        except (OSError, ValueError):
            self._stop_process()
            return _Failure(0, MailerError("the render process could not be reached"))
        self._forget = False
        progress = self._progress
        limit = self.limits.time_limit
        while True:
            started = progress[_STARTED]
            index, phase = int(progress[_INDEX]), progress[_PHASE]
            wait = limit
            if started and started == progress[_STARTED]:
                wait = started + limit - time.monotonic()
                if wait <= 0:
                    self._stop_process()
                    return _Failure(index, _time_error(self.limits), whole_spec=phase == _COMPILE)
            try:
                if conn.poll(min(wait, 1.0)):
                    healthy, answers = conn.recv()
                    break
            except (EOFError, OSError):
                return self._died(int(progress[_INDEX]))
        if not healthy:
            self._stop_process()
        return [_unpack_error(a) if isinstance(a, tuple) else a for a in answers]

    def _died(self, index: int) -> _Failure:
        proc = self._holder[0]
        code = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(1)
        self._stop_process()
        if self._cancel.is_set() or code in (-signal.SIGTERM, -signal.SIGINT):
            return _Failure(index, RenderCancelled("rendering was stopped"))
        return _Failure(index, TemplateError(f"the render process died (exit code {code}) rendering this message"))


# ------------------------------------------------------------------- synchronous use


class IsolatedVariant:
    """A variant compiled in the render process; renders there (same API as in-process)."""

    def __init__(self, spec: VariantSpec, worker: RenderWorker) -> None:
        self._spec = spec
        self._worker = worker

    @property
    def spec(self) -> VariantSpec:
        return self._spec

    def _one(self, job: RenderJob) -> Rendered:
        [outcome] = self._worker.run([(self._spec, job)])
        if isinstance(outcome, MailerError):
            raise outcome
        return outcome

    def render(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        message_id: str,
        unsubscribe_url: str,
        unsubscribe_mailto: str | None,
        date: datetime,
    ) -> bytes:
        """As :meth:`CompiledVariant.render`; also raises :class:`RenderLimitError`."""
        job = RenderJob(rcpt, to_addr, unsubscribe_url, message_id, unsubscribe_mailto, date)
        data = self._one(job).data
        assert data is not None
        return data

    def render_parts(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        unsubscribe_url: str,
        message_id: str | None = None,
        unsubscribe_mailto: str | None = None,
        date: datetime | None = None,
    ) -> RenderedParts:
        """As :meth:`CompiledVariant.render_parts`; also raises :class:`RenderLimitError`."""
        parts = self._one(RenderJob(rcpt, to_addr, unsubscribe_url)).parts
        assert parts is not None
        return parts


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
