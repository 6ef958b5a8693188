"""A capture SMTP server: accepts every message and files it in a Maildir.

``mailer capture`` runs it so that ``make demo`` (and anyone trying mailer out) can
send real SMTP traffic without a relay and then read what would have gone out::

    with CaptureServer(Path("demo-mail"), port=0) as srv:
        print(srv.host, srv.port)       # point the transport here
        ...                             # send
        assert srv.count == 2           # two copies filed

Each accepted copy becomes one Maildir file per envelope recipient, with the envelope
prepended as ``X-Envelope-From`` / ``X-Envelope-To`` headers, because the envelope
(VERP sender, the one recipient) is what a reader of a capture most needs and it is
not otherwise part of the message.

The server runs on :class:`mailer.smtp.server.BackgroundSMTPServer`: a taken port fails at
once with :class:`~mailer.domain.errors.TransportError`, and port 0 resolves to a real port
that ``.port`` reports.
"""

from __future__ import annotations

import mailbox
import threading
from collections.abc import Callable
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailer.smtp.server import BackgroundSMTPServer

#: Large enough for any press release with inline images; the capture must not be the
#: thing that refuses a message the real relay would take.
DATA_SIZE_LIMIT = 64 * 1024 * 1024

#: Greeting host name (saves aiosmtpd a DNS lookup per connection).
SERVER_HOSTNAME = "capture.mailer.invalid"


class CaptureHandler:
    """aiosmtpd handler that files every accepted message in a Maildir.

    ``count`` is the number of copies filed (one per envelope recipient); it is safe
    to read from any thread.
    """

    def __init__(self, maildir: Path) -> None:
        self._box = mailbox.Maildir(maildir, create=True)
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        """Copies filed so far."""
        with self._lock:
            return self._count

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """File one copy per recipient; reply 451 if the Maildir cannot be written."""
        content: bytes = envelope.original_content or b""
        sender = envelope.mail_from or ""
        try:
            for rcpt in envelope.rcpt_tos:
                head = f"X-Envelope-From: <{sender}>\r\nX-Envelope-To: <{rcpt}>\r\n"
                self._box.add(head.encode("utf-8", "surrogateescape") + content)
                with self._lock:
                    self._count += 1
        except OSError:
            # Saying 250 for a copy we did not keep would hide it from the demo.
            return "451 4.3.0 Capture could not store the message"
        return "250 2.0.0 Captured"


class CaptureServer(BackgroundSMTPServer):
    """A capture SMTP server on ``host:port`` filing messages into ``maildir``.

    Use as a context manager or call :meth:`start` / :meth:`stop`. After
    :meth:`start`, ``.port`` is the real port (also when 0 was asked for).
    Messages are accepted from anyone for anyone, with SMTPUTF8 and up to
    :data:`DATA_SIZE_LIMIT` bytes.
    """

    what = "capture server"
    server_hostname = SERVER_HOSTNAME
    data_size_limit = DATA_SIZE_LIMIT

    def __init__(self, maildir: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.maildir = Path(maildir)
        self.capture = CaptureHandler(self.maildir)
        super().__init__(self.capture, host=host, port=port)

    @property
    def count(self) -> int:
        """Copies filed since this server was created (one per recipient)."""
        return self.capture.count


def serve_capture(
    host: str,
    port: int,
    maildir: Path,
    *,
    on_ready: Callable[[CaptureServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run a capture server until SIGINT/SIGTERM (or ``stop`` is set); blocks.

    ``on_ready`` is called once the server listens (the CLI prints the address).
    Signal handlers are installed only when called from the main thread, and the
    previous handlers are restored on return.

    Raises:
        TransportError: the port is taken or the address cannot be bound.
    """
    CaptureServer(maildir, host=host, port=port).serve_until_stopped(on_ready=on_ready, stop=stop)
