"""What dispatch needs from SMTP: the :class:`Transport` interface and its per-message
result, :class:`SendResult`, plus :func:`reply_result` and :func:`tls_context`. The
implementation: :class:`mailer.smtp.pool.SmtpPool` of :mod:`mailer.smtp.client` connections,
built by :func:`mailer.smtp.factory.make_transport`.

Per-message outcomes come back as :class:`SendResult` values; only "SMTP cannot be used
at all" (cannot connect, TLS or authentication refused) raises :class:`TransportError`.
One recipient per transaction, so every reply belongs to exactly one delivery.

The one ambiguous moment is after the message data was handed over: if the connection
dies or times out before the final reply, the server may or may not have accepted it.
Such results are ``unknown`` and never retried automatically.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from mailer.config import SmtpSettings
from mailer.domain.states import Outcome
from mailer.domain.status import Fault, Reason, Stage, Verdict, classify_reply, enhanced_status


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    code: int | None
    reply: str
    stage: str  # connect | mail | rcpt | data
    fault: Fault | None = None
    reason: Reason | None = None
    hard: bool = False

    @property
    def status(self) -> str | None:
        return enhanced_status(self.reply)


class Transport(Protocol):
    """What dispatch needs from a sender (the SMTP pool, or an in-memory fake in tests)."""

    async def send(
        self, sender: str, recipient: str, data: bytes, *, before_data: Callable[[], Awaitable[None]] | None = None
    ) -> SendResult: ...

    async def close(self) -> None: ...


class Session(Protocol):
    """A run of messages on one connection (:meth:`mailer.smtp.pool.SmtpPool.session`):
    each message's data may carry the envelope of the one that ``following`` names,
    which must be the next sent on the session."""

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        before_data: Callable[[], Awaitable[None]] | None = None,
        following: tuple[str, str] | None = None,
    ) -> SendResult: ...


class _OneByOne:
    """A session of a transport that has none: each message sent on its own."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        before_data: Callable[[], Awaitable[None]] | None = None,
        following: tuple[str, str] | None = None,
    ) -> SendResult:
        return await self.transport.send(sender, recipient, data, before_data=before_data)


@asynccontextmanager
async def session(transport: Transport) -> AsyncIterator[Session]:
    """``transport``'s session (:class:`Session`), or one sending each message on its own
    for a transport without sessions (an in-memory fake)."""
    opener = getattr(transport, "session", None)
    if opener is None:
        yield _OneByOne(transport)
        return
    async with opener() as held:
        yield held


def reply_result(code: int, message: str, stage: str) -> SendResult:
    """The result an SMTP reply at ``stage`` stands for, as :func:`mailer.domain.status.classify_reply` decides."""
    verdict: Verdict = classify_reply(code, message, stage=Stage(stage))
    return SendResult(
        verdict.outcome, code, f"{code} {message}".strip(), stage, verdict.fault, verdict.reason, verdict.hard
    )


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """The TLS context for ``settings`` (None when ``tls = "none"``): the system's trust
    store, or only ``ca_file`` when one is given (a private relay, the tests)."""
    if settings.tls == "none":
        return None
    return ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
