"""Forwarding replies to the person who handles them, through a durable outbox.

:func:`build_forward` makes the complete message when the reply is recorded (so it is
committed with it, before the receiver's 250): From the forwarder's address (a
journalist's domain would fail DMARC) with the journalist's name, ``Reply-To`` the
journalist, the original subject, a short note (who, which release, how it was
classified, a link to the contact in the staff UI), then the original body as it came —
all its parts, attachments included.

:class:`Forwarder` sends what is due from the outbox (``reply_forwards``) over a
:class:`~mailer.smtp.transport.Transport`. A forward that is refused, that cannot reach
the relay, or whose outcome is unknown is tried again after ``replies.forward_retry``
(the last interval repeats) and never dropped: a duplicate forward is better than a lost
reply. A forward is taken for ``LEASE`` seconds, so two forwarders never send it at once.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from mailer.config import Settings
from mailer.domain.errors import MailerError
from mailer.domain.states import Outcome, retry_delay
from mailer.inbound.classify import Reading
from mailer.inbound.text import sender_address, sender_name, subject
from mailer.smtp.transport import Transport
from mailer.store import replies as reply_store
from mailer.store.db import transaction
from mailer.store.replies import DueForward, ReplyContext

log = logging.getLogger(__name__)

#: seconds a forwarder holds a forward it took (a crash in between: it is sent again after)
LEASE = 300
_CONTENT_HEADERS = ("content-type", "content-transfer-encoding", "content-disposition", "content-language")


def build_forward(
    raw: bytes,
    msg: Message,
    *,
    ctx: ReplyContext,
    reading: Reading,
    reply_id: int,
    sender: str,
    recipient: str,
    settings: Settings,
    now: datetime,
) -> bytes:
    """The forward of reply ``reply_id`` to ``recipient`` (see the module docstring).
    Never raises for what the journalist's message holds: a body that cannot be carried
    as it came is attached as ``original.eml`` instead."""

    def head() -> EmailMessage:
        return _head(
            msg,
            ctx=ctx,
            reading=reading,
            reply_id=reply_id,
            sender=sender,
            recipient=recipient,
            settings=settings,
            now=now,
        )

    fwd = head()
    try:
        fwd.make_mixed()
        fwd.attach(_original_body(raw))
        return fwd.as_bytes()
    except Exception:
        # Untrusted MIME the email package cannot re-write: carry the bytes as they came.
        log.warning("reply %s: original body attached as original.eml", reply_id, exc_info=True)
        fwd = head()
        fwd.add_attachment(raw, maintype="application", subtype="octet-stream", filename="original.eml")
        return fwd.as_bytes()


def _head(
    msg: Message,
    *,
    ctx: ReplyContext,
    reading: Reading,
    reply_id: int,
    sender: str,
    recipient: str,
    settings: Settings,
    now: datetime,
) -> EmailMessage:
    """The forward's headers and its note (who, which release, the classification, the link)."""
    journalist = _line(sender_address(msg) or ctx.email or "")
    name = _line(sender_name(msg) or " ".join(p for p in (ctx.first_name, ctx.last_name) if p) or journalist)
    fwd = EmailMessage(policy=email.policy.SMTP)
    fwd["From"] = Address(display_name=f"{name} (via {_line(ctx.client_name)} replies)", addr_spec=sender)
    fwd["To"] = recipient
    if "@" in journalist:
        fwd["Reply-To"] = Address(display_name=name, addr_spec=journalist)
    fwd["Subject"] = _line(subject(msg)) or f"Reply to {_line(ctx.release_title)}"
    fwd["Date"] = format_datetime(now)
    fwd["Message-ID"] = make_msgid("reply-" + str(reply_id), domain=sender.rpartition("@")[2] or None)
    original_id = _line(str(msg.get("Message-ID") or ""))
    if original_id.startswith("<") and original_id.endswith(">") and original_id.isascii():
        fwd["References"] = original_id
    fwd["X-Mailer-Reply"] = f"{reply_id}; kind={reading.kind.value}"
    contact_url = f"{settings.web.base_url.rstrip('/')}/contacts/{quote(ctx.email or journalist, safe='@')}"
    outlet = f" ({ctx.outlet})" if ctx.outlet else ""
    note = (
        f'Reply from {name} <{journalist}>{outlet} to release #{ctx.release_id} "{ctx.release_title}".\n'
        f"Classified: {reading.kind.value}" + (f" ({reading.evidence})" if reading.evidence else "") + "\n"
        f"Contact in mailer: {contact_url}\n"
        f"Reply to this message to answer {name} directly.\n"
    )
    fwd.set_content(note)
    return fwd


def _line(text: str) -> str:
    """``text`` on one line without control characters (fit for a header)."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _original_body(raw: bytes) -> EmailMessage:
    """The original message's body as one MIME part: its content headers and its body
    bytes as they came (a multipart stays a multipart, attachments included)."""
    end = raw.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = raw.find(b"\n\n"), 2
    head, body = (raw, b"") if end < 0 else (raw[:end], raw[end + sep :])
    headers = BytesParser(policy=email.policy.compat32).parsebytes(head + b"\r\n\r\n", headersonly=True)
    lines = [f"{k}: {v}" for k, v in headers.items() if k.lower() in _CONTENT_HEADERS]
    if not any(line.lower().startswith("content-type:") for line in lines):
        lines.append("Content-Type: text/plain; charset=utf-8")
    part_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body
    part = BytesParser(_class=EmailMessage, policy=email.policy.SMTP).parsebytes(part_bytes)
    assert isinstance(part, EmailMessage)
    return part


@dataclass(frozen=True)
class ForwardSummary:
    """One pass over the outbox."""

    sent: int = 0
    failed: int = 0


class Forwarder:
    """Sends due forwards from the outbox; safe to run in several processes."""

    def __init__(self, sessions: sessionmaker[Session], *, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock

    def _claim(self, limit: int) -> list[DueForward]:
        now = self._clock()
        with transaction(self._sessions) as session:
            return reply_store.claim_due_forwards(
                session, now=now, lease_until=now + timedelta(seconds=LEASE), limit=limit
            )

    def _sent(self, forward: DueForward) -> None:
        with transaction(self._sessions) as session:
            reply_store.forward_sent(session, forward.id, now=self._clock())

    def _failed(self, forward: DueForward, error: str) -> None:
        delay = retry_delay(forward.attempts + 1, self._settings.replies.forward_retry)
        with transaction(self._sessions) as session:
            reply_store.forward_failed(
                session, forward.id, error=error, next_attempt_at=self._clock() + timedelta(seconds=delay)
            )

    async def forward_due(self, transport: Transport, *, limit: int = 50) -> ForwardSummary:
        """Send every forward due now (up to ``limit``); each result is committed as it comes."""
        sent = failed = 0
        unreachable = False
        for forward in await asyncio.to_thread(self._claim, limit):
            if unreachable:
                # Not tried: the relay just failed; its lease brings it back in LEASE seconds.
                continue
            try:
                result = await transport.send(forward.sender, forward.recipient, forward.message)
            except MailerError as exc:  # the relay cannot be reached at all
                error = f"relay unreachable: {exc}"
                unreachable = True
            else:
                if result.outcome is Outcome.SENT:
                    await asyncio.to_thread(self._sent, forward)
                    sent += 1
                    continue
                error = f"{result.outcome.value}: {result.reply}"
            log.warning(
                "forward of reply %s to %s failed (%s); tried again later", forward.reply_id, forward.recipient, error
            )
            await asyncio.to_thread(self._failed, forward, error)
            failed += 1
        return ForwardSummary(sent, failed)

    def run(self, make_transport: Callable[[], Transport], *, stop: threading.Event, poll_seconds: float = 5.0) -> None:
        """Forward what is due every ``poll_seconds`` until ``stop`` is set (blocks; for a thread)."""

        async def loop() -> None:
            transport = make_transport()
            try:
                while not stop.is_set():
                    try:
                        await self.forward_due(transport)
                    except Exception:
                        # A database hiccup must not end forwarding for good; the outbox keeps everything.
                        log.exception("forwarding replies failed; trying again")
                    await asyncio.to_thread(stop.wait, poll_seconds)
            finally:
                await transport.close()

        asyncio.run(loop())
