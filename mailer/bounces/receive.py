"""The bounce receiver: an LMTP (default) or SMTP server that the MTA of the bounce
domain delivers returned messages to.

* ``RCPT`` is accepted only for ``bounces+TOKEN@`` and ``unsubscribe+TOKEN@`` at a
  bounce domain (the instance's or any client's return-path domain) with a genuine
  signature (a proof's ``bounces+pID-MAC@`` too), and for the addresses a person must be
  able to reach: ``postmaster@`` and ``abuse@`` a bounce domain (RFC 5321 4.5.1, RFC 2142) and
  the configured feedback-loop address (``bounces.feedback_address``). Anything else gets
  ``550 5.1.1``, so forged notices never reach the database. ARF reports at the staff
  addresses are matched through the enclosed original and filed; any other mail there
  is kept for staff (``mailer bounces inbox``), never dropped.
* After ``DATA`` the message is processed and committed *before* the reply: ``250``
  means it is in the ledger. A database failure answers ``451 4.3.0`` (RFC 5321 §4.2.1:
  transient), so the MTA keeps the message and retries; processing is idempotent, so
  the retry never records anything twice.
* LMTP (RFC 2033 §4.2) answers after ``DATA`` once per accepted recipient, in RCPT
  order. aiosmtpd sends one reply per transaction, so the handler writes the earlier
  recipients' replies itself and returns the last one.

Use as ``with BounceServer(processor, port=0) as srv: ...`` or, from the CLI,
:func:`serve_bounces`, which blocks until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import SQLAlchemyError

from mailer.bounces.process import MessageProcessor, ProcessResult
from mailer.domain.errors import MailerError
from mailer.smtp.server import BackgroundSMTPServer
from mailer.store import counters

log = logging.getLogger(__name__)

#: A notice may return the whole original, and a press release can carry images.
DATA_SIZE_LIMIT = 50 * 1024 * 1024

#: Greeting host name; passing one saves aiosmtpd a DNS lookup per connection.
SERVER_HOSTNAME = "bounces.mailer.invalid"

ACCEPTED = "250 2.0.0 Recorded"
TRY_LATER = "451 4.3.0 Cannot record the message now, try again later"


class BounceHandler:
    """aiosmtpd handler: refuses unknown recipients, processes each accepted one.

    ``results`` keeps the :class:`ProcessResult` of every committed recipient (for
    tests and statistics); read it from any thread.
    """

    def __init__(self, processor: MessageProcessor, *, lmtp: bool) -> None:
        self._processor = processor
        self._lmtp = lmtp
        self._lock = threading.Lock()
        self._results: list[ProcessResult] = []

    @property
    def results(self) -> list[ProcessResult]:
        """A copy of the results so far, in arrival order."""
        with self._lock:
            return list(self._results)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept only bounce and mailto-unsubscribe addresses with a genuine token, and
        the staff addresses."""
        if not self._processor.accepts_recipient(address):
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Process and commit the message for each recipient, then reply."""
        content = envelope.original_content or b""
        replies = [await self._deliver(content, rcpt) for rcpt in envelope.rcpt_tos]
        if not replies:
            return "503 5.5.1 No valid recipients"
        if not self._lmtp:
            # One reply for the transaction: a retry of all of it is harmless.
            return TRY_LATER if TRY_LATER in replies else ACCEPTED
        for reply in replies[:-1]:
            await server.push(reply)
        return replies[-1]

    async def _deliver(self, content: bytes, rcpt: str) -> str:
        try:
            # The processor is synchronous (SQLAlchemy sessions); keep the loop free
            # for other connections while it commits.
            result = await asyncio.to_thread(self._processor.process, content, envelope_recipients=[rcpt])
        except (MailerError, SQLAlchemyError, OSError):
            log.exception("could not record a message for %s; answered 451", rcpt)
            return TRY_LATER
        with self._lock:
            self._results.append(result)
        counters.bump("inbound_messages", kind=result.kind.value if result.kind is not None else "other")
        return ACCEPTED


class BounceServer(BackgroundSMTPServer):
    """The receiver on ``host:port`` in a background thread; LMTP unless ``lmtp`` is
    false. After :meth:`start`, ``.port`` is the real port (also when 0 was asked for)."""

    what = "bounce receiver"
    server_hostname = SERVER_HOSTNAME
    data_size_limit = DATA_SIZE_LIMIT

    def __init__(self, processor: MessageProcessor, *, host: str = "127.0.0.1", port: int = 0, lmtp: bool = True):
        self.lmtp = lmtp
        self.handler = BounceHandler(processor, lmtp=lmtp)
        super().__init__(self.handler, host=host, port=port, smtp_factory=LMTP if lmtp else SMTP)


def serve_bounces(
    processor: MessageProcessor,
    *,
    host: str,
    port: int,
    lmtp: bool = True,
    on_ready: Callable[[BounceServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the receiver until SIGINT/SIGTERM (or ``stop`` is set); blocks.

    Stopping drops connections that are still talking; their MTAs retry whatever got
    no ``250``, and a message whose commit had already finished is then recognized as
    a duplicate.
    Signal handlers are installed only from the main thread and restored on return.

    Raises:
        TransportError: the address cannot be bound.
    """
    BounceServer(processor, host=host, port=port, lmtp=lmtp).serve_until_stopped(on_ready=on_ready, stop=stop)
