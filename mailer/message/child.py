"""The render process itself: ``python -m mailer.message.child CONN LIFELINE PROGRESS``
(three inherited file descriptors: the request socket, the parent's lifeline pipe, the
shared progress memory; see :mod:`mailer.message.exchange`). Started and killed by
:class:`mailer.message.worker.RenderWorker`.

It compiles and renders what the parent asks, one batch at a time, keeping the variants it
compiled; ignores SIGINT (Ctrl-C belongs to the parent); caps its address space at its
start-up size plus ``render.memory_limit_mb``; and exits when the parent's end of the
lifeline closes, so a hung render cannot outlive a killed parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mailer.domain.errors import MailerError, TemplateError
from mailer.message.exchange import (
    COMPILE,
    INDEX,
    PHASE,
    PROGRESS_BYTES,
    STARTED,
    PackedData,
    PackedError,
    pack_data,
    pack_error,
    unpack_job,
)
from mailer.message.limits import MB, RenderLimits, memory_error, size_error
from mailer.message.mime import CompiledVariant
from mailer.message.spec import Rendered, RenderJob, VariantSpec
from mailer.message.templates import Renderer
from mailer.message.wire import CrlfReady, KnownDots, crlf_only


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
    limit = pages * os.sysconf("SC_PAGE_SIZE") + extra_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


#: the DKIM signers of the keys jobs named, by (key file, selector, domain), each with
#: the file's (mtime, size) when it was read
_SIGNERS: dict[tuple[str, str, str], tuple[tuple[int, int], Any]] = {}


def _signed(data: bytes, key: tuple[str, str, str]) -> bytes:
    """``data`` with the DKIM-Signature of ``key`` (read again whenever its file changed:
    a key replaced in place is used from its next message), of the same wire kind when
    the signature header keeps it (:mod:`mailer.message.wire`). Raises ConfigError when
    the key cannot be read or used."""
    key_file, selector, domain = key
    try:
        stat = os.stat(key_file)
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (-1, -1)  # DkimSigner says why, naming the key
    cached = _SIGNERS.get(key)
    if cached is not None and cached[0] == version:
        signer = cached[1]
    else:
        # imported here: dkimpy (~0.1 s) is no part of a render process that never signs
        from mailer.message.dkim import DkimSigner

        if len(_SIGNERS) >= 16:
            _SIGNERS.clear()
        signer = DkimSigner(key_file=Path(key_file), selector=selector, domain=domain)
        _SIGNERS[key] = (version, signer)
    signed: bytes = signer.sign(data)
    header = signed[: len(signed) - len(data)]
    if not (isinstance(data, CrlfReady) and crlf_only(header) and header.endswith(b"\r\n")):
        return signed  # nothing vouched for: dot_stuff checks it all
    if header.startswith(b".") or b"\r\n." in header:
        return CrlfReady(signed)
    if type(data) is KnownDots:
        return KnownDots(signed, tuple(at + len(header) for at in data.dots))
    return type(data)(signed)


def _render_job(variant: CompiledVariant, job: RenderJob, limits: RenderLimits) -> Rendered:
    """``job`` rendered, a message dated now when the job gives no date; refused when over
    ``render.max_message_bytes``; signed when the job names a DKIM key."""
    if job.message_id is not None and job.date is None:
        job = replace(job, date=datetime.now().astimezone())
    rendered = variant.run(job)
    if rendered.data is not None:
        size = len(rendered.data)
    else:
        assert rendered.parts is not None
        parts = rendered.parts
        size = sum(len(p.encode("utf-8", "surrogatepass")) for p in (parts.subject, parts.text, parts.html))
    if size > limits.max_message_bytes:
        raise size_error(size, limits)
    if job.dkim is not None and rendered.data is not None:
        rendered = Rendered(_signed(rendered.data, job.dkim), rendered.parts)
    return rendered


def child_main(conn_fd: int, lifeline_fd: int, progress_fd: int) -> None:
    """Serve the parent on the three inherited descriptors until it goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(conn_fd)
    _exit_with_parent(Connection(lifeline_fd, writable=False))
    progress = (ctypes.c_double * 3).from_buffer(mmap.mmap(progress_fd, PROGRESS_BYTES))
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
        results: list[PackedData | Rendered | PackedError] = []
        for index, (spec_id, packed) in enumerate(jobs):
            progress[STARTED] = 0.0
            progress[INDEX] = float(index)
            try:
                variant = compiled.get(spec_id)
                if variant is None:
                    progress[PHASE] = COMPILE
                    progress[STARTED] = time.monotonic()
                    try:
                        variant = renderer.compile_here(specs[spec_id])
                    except MailerError as exc:
                        variant = exc
                    compiled[spec_id] = variant
                progress[PHASE] = 0.0
                progress[STARTED] = time.monotonic()
                if isinstance(variant, MailerError):
                    raise variant
                if packed is None:
                    results.append(Rendered(None, None))
                else:
                    rendered = _render_job(variant, unpack_job(packed), limits)
                    # The bytes alone when that is all the job gave (see exchange).
                    results.append(pack_data(rendered.data) if rendered.parts is None and rendered.data else rendered)
            except MemoryError:
                healthy = False
                results.append(pack_error(memory_error(limits)))
            except MailerError as exc:
                if isinstance(exc.__cause__, MemoryError):
                    healthy = False
                    exc = memory_error(limits)
                results.append(pack_error(exc))
            except Exception as exc:  # a bug, not the template's fault; still one job's error
                results.append(pack_error(TemplateError(f"{type(exc).__name__}: {exc}")))
        progress[STARTED] = 0.0
        conn.send((healthy, results))


if __name__ == "__main__":
    child_main(*(int(arg) for arg in sys.argv[1:4]))
