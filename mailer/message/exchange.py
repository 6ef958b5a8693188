"""What passes between the engine's side of a render process (:mod:`mailer.message.worker`)
and the process itself (:mod:`mailer.message.child`).

Over a socket (``multiprocessing.connection`` framing, pickled values): first
``(templates_dir, sources, limits)``, answered ``"ready"``; then each request
``(forget, [(spec_id, spec)], [(spec_id, packed job or None)])`` (None: compile only;
``forget``: drop every spec sent before; a job travels as a flat tuple, :func:`pack_job`),
answered ``(healthy, [packed message | Rendered | packed error])``, one entry a job (the
message alone, :func:`pack_data`, for a job without its parts), ``healthy`` False asking
for a fresh process (after a MemoryError). Flat tuples and plain bytes pickle in a third
of the time of the dataclasses, and a bytes *subclass* (the renderer's
:class:`~mailer.message.wire.CrlfReady`) would pickle through Python-level ``__reduce__``:
so the kind travels as a letter beside plain bytes (issue 20).

Through shared memory, three doubles the child writes before each step and the parent
reads while it waits: the job's index in the batch, :data:`COMPILE` while compiling, and
the monotonic start time of the step (0.0 between steps). From them the parent knows
which job ran past the time limit when it kills the child.
"""

from __future__ import annotations

import ctypes
from typing import Any

from mailer.domain.errors import ConfigError, HeaderInjectionError, InputError, MailerError, TemplateError
from mailer.message.limits import RenderCancelled, RenderLimitError
from mailer.message.spec import Recipient, Rendered, RenderJob
from mailer.message.wire import CrlfReady, KnownDots, WireReady

#: Most jobs sent to the render process in one request.
MAX_BATCH = 200

#: The progress slots (indexes into the shared doubles), and the phase value for compiling.
INDEX, PHASE, STARTED = 0, 1, 2
COMPILE = 1.0
PROGRESS_BYTES = 3 * ctypes.sizeof(ctypes.c_double)

#: The answer for one job: what it gave, or the error it raised.
RenderOutcome = Rendered | MailerError

#: A :class:`RenderJob` as it travels (:func:`pack_job`).
PackedJob = tuple[Any, ...]


#: A message as it travels: [kind letter, plain bytes] (a list: tuples are errors).
PackedData = list[Any]

_KINDS: dict[type, str] = {CrlfReady: "c", WireReady: "w"}
_KIND_TYPES: dict[str, type[bytes]] = {"c": CrlfReady, "w": WireReady}


def pack_data(data: bytes) -> PackedData:
    """``data`` as plain bytes and a letter for its kind (:mod:`mailer.message.wire`);
    a :class:`KnownDots` message with its offsets after them."""
    if type(data) is KnownDots:
        return ["d", bytes(data), data.dots]
    kind = _KINDS.get(type(data))
    return [kind, bytes(data)] if kind is not None else ["", data]


def unpack_data(packed: PackedData) -> bytes:
    """The bytes, of the kind, :func:`pack_data` packed."""
    kind, data = packed[0], packed[1]
    if kind == "d":
        return KnownDots(data, packed[2])
    cls = _KIND_TYPES.get(kind)
    return cls(data) if cls is not None else bytes(data)


def pack_job(job: RenderJob) -> PackedJob:
    """``job`` (and its recipient) as a flat tuple of its fields, in declaration order."""
    r = job.recipient
    return (
        r.email,
        r.first_name,
        r.last_name,
        r.outlet,
        r.attributes,
        r.timezone,
        job.to_addr,
        job.unsubscribe_url,
        job.message_id,
        job.unsubscribe_mailto,
        job.date,
        job.parts,
        job.reply_to,
        job.in_reply_to,
        job.kit_token,
        job.release_token,
        job.dkim,
    )


def unpack_job(packed: PackedJob) -> RenderJob:
    """The job :func:`pack_job` packed."""
    return RenderJob(Recipient(*packed[:6]), *packed[6:])


#: An error as it travels: ("error", class name, message, the instance's fields).
PackedError = tuple[str, str, str, dict[str, Any]]

_ERROR_TYPES: dict[str, type[MailerError]] = {
    cls.__name__: cls
    for cls in (
        MailerError,
        TemplateError,
        RenderLimitError,
        InputError,
        HeaderInjectionError,
        RenderCancelled,
        ConfigError,
    )
}


def pack_error(exc: MailerError) -> PackedError:
    """An error as plain data: the classes' keyword-only constructors do not unpickle."""
    name = type(exc).__name__ if type(exc).__name__ in _ERROR_TYPES else "MailerError"
    return ("error", name, str(exc), dict(vars(exc)))


def unpack_error(packed: PackedError) -> MailerError:
    """The error :func:`pack_error` packed (a plain MailerError for an unknown class)."""
    _, name, message, fields = packed
    cls = _ERROR_TYPES.get(name, MailerError)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error
