"""The engine's side of a render process: :class:`RenderWorker` starts it
(``python -m mailer.message.child``, a fresh interpreter: ~0.15 s to start, nothing of the
parent's state inherited), sends it batches of jobs, and kills it (SIGKILL) as soon as one
job has run longer than :attr:`~mailer.message.limits.RenderLimits.time_limit`.

The child writes each job's index and start time into shared memory
(:mod:`mailer.message.exchange`), so after a kill the worker knows which job it was: that
job fails with :class:`~mailer.message.limits.RenderLimitError`, and the rest of the batch
goes to a fresh child. A message costs a share of one round trip, not a process.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
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
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import mailer
from mailer.domain.errors import MailerError, TemplateError
from mailer.message.exchange import (
    COMPILE,
    INDEX,
    MAX_BATCH,
    PHASE,
    PROGRESS_BYTES,
    STARTED,
    PackedJob,
    RenderOutcome,
    pack_job,
    unpack_data,
    unpack_error,
)
from mailer.message.limits import RenderCancelled, RenderLimits, time_error
from mailer.message.spec import Rendered, RenderJob, VariantSpec

#: How long a fresh render process may take to say it is ready.
START_TIMEOUT = 30.0


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
            shared.truncate(PROGRESS_BYTES)
            progress_map = mmap.mmap(shared.fileno(), PROGRESS_BYTES)
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

    def run(self, jobs: Sequence[tuple[VariantSpec, RenderJob | None]]) -> list[RenderOutcome]:
        """Render ``jobs`` (a None job only compiles its spec), in order.

        Each outcome is what its job gave or the MailerError it failed with: a
        TemplateError, HeaderInjectionError or InputError from the template or the
        values, a :class:`RenderLimitError` for a job over a limit, a
        :class:`RenderCancelled` after :meth:`cancel`. Raises MailerError only when no
        render process can be started.
        """
        with self._lock:
            self._cancel.clear()
            results: list[RenderOutcome | None] = [None] * len(jobs)
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
        done: list[RenderOutcome] = []
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

    def _exchange(self, jobs: list[tuple[VariantSpec, RenderJob | None]]) -> list[RenderOutcome] | _Failure:
        """Send one batch and wait for its answer, killing the process at a job's deadline."""
        if self._holder[0] is None or self._conn is None or self._holder[0].poll() is not None:
            self._stop_process()
            self._start()
        conn = self._conn
        assert conn is not None
        wire: list[tuple[int, PackedJob | None]] = []
        new_specs: list[tuple[int, VariantSpec]] = []
        for spec, job in jobs:
            spec_id = self._spec_id(spec)
            if spec_id not in self._known:
                self._known.add(spec_id)
                new_specs.append((spec_id, spec))
            wire.append((spec_id, None if job is None else pack_job(job)))
        try:
            conn.send((self._forget, new_specs, wire))
        except (OSError, ValueError):
            self._stop_process()
            return _Failure(0, MailerError("the render process could not be reached"))
        self._forget = False
        progress = self._progress
        limit = self.limits.time_limit
        while True:
            started = progress[STARTED]
            index, phase = int(progress[INDEX]), progress[PHASE]
            wait = limit
            if started and started == progress[STARTED]:
                wait = started + limit - time.monotonic()
                if wait <= 0:
                    self._stop_process()
                    return _Failure(index, time_error(self.limits), whole_spec=phase == COMPILE)
            try:
                if conn.poll(min(wait, 1.0)):
                    healthy, answers = conn.recv()
                    break
            except (EOFError, OSError):
                return self._died(int(progress[INDEX]))
        if not healthy:
            self._stop_process()
        return [
            Rendered(unpack_data(a), None) if isinstance(a, list) else unpack_error(a) if isinstance(a, tuple) else a
            for a in answers
        ]

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
