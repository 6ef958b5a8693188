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

The listening socket is bound in the calling thread before the server thread starts,
so a taken port fails at once with :class:`~mailer.domain.errors.TransportError` and port 0
resolves to a real port that ``.port`` reports. The same controller,
:class:`BoundController`, is reused by the test suite's fault-injecting server.
"""

from __future__ import annotations

import asyncio
import mailbox
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailer.domain.errors import TransportError

__all__ = [
    "BoundController",
    "CaptureHandler",
    "CaptureServer",
    "bind_listener",
    "serve_capture",
]

#: Large enough for any press release with inline images; the capture must not be the
#: thing that refuses a message the real relay would take.
DATA_SIZE_LIMIT = 64 * 1024 * 1024

#: Many workers may open pooled connections at once; the asyncio default (100) makes
#: the kernel drop SYNs past it, which costs a client a one-second retransmit.
LISTEN_BACKLOG = 1024

#: Greeting host name. Passing one avoids a ``socket.getfqdn()`` DNS lookup that
#: aiosmtpd would otherwise do for every new connection.
SERVER_HOSTNAME = "capture.mailer.invalid"


def bind_listener(host: str, port: int, *, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """Bind and listen on ``host:port`` (port 0 picks a free port).

    Returns the listening socket; the caller owns it (or hands it to
    :class:`BoundController`, which closes it on stop).

    Raises:
        TransportError: the address cannot be resolved or bound (port taken,
            permission denied, address not local).
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise TransportError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, socktype, proto, _canon, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        # Same as asyncio's create_server: a restart may rebind while old connections
        # sit in TIME_WAIT. It does not let two listeners share a port on POSIX.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise TransportError(f"cannot listen on {host}:{port}: {reason}") from exc
    sock.setblocking(False)
    return sock


class BoundController(Controller):
    """An aiosmtpd threaded :class:`Controller` serving an already bound socket.

    aiosmtpd's own controller binds inside its thread, reports a taken port only
    after ``ready_timeout`` seconds, and cannot report the port it got for port 0;
    binding first (see :func:`bind_listener`) fixes both.

    ``smtp_factory``, when given, builds the protocol object for each connection
    (it receives the handler and the SMTP keyword arguments); by default it is
    :class:`aiosmtpd.smtp.SMTP`.
    """

    def __init__(
        self,
        handler: object,
        sock: socket.socket,
        *,
        smtp_factory: Callable[..., SMTP] | None = None,
        **smtp_kwargs: Any,
    ) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **smtp_kwargs)
        self._sock = sock
        self._smtp_factory = smtp_factory

    def factory(self) -> SMTP:
        """Build the SMTP protocol object for one connection."""
        if self._smtp_factory is None:
            return SMTP(self.handler, **self.SMTP_kwargs)
        return self._smtp_factory(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        # asyncio calls sock.listen(backlog) again; keep our larger backlog.
        return self.loop.create_server(
            self._factory_invoker, sock=self._sock, ssl=self.ssl_context, backlog=LISTEN_BACKLOG
        )


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


class BackgroundSMTPServer:
    """An aiosmtpd server on ``host:port`` in a background thread (start/stop, or ``with``).

    Subclasses name themselves in ``what`` and pass their handler; ``smtp_factory``
    chooses the protocol class (SMTP, or LMTP). After :meth:`start`, ``.port`` is the
    real port, also when 0 was asked for.
    """

    what = "SMTP server"

    def __init__(self, handler: object, *, host: str, port: int, smtp_factory: Callable[..., SMTP] = SMTP) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._smtp_factory = smtp_factory
        self._controller: BoundController | None = None

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._controller is not None

    def start(self) -> None:
        """Bind and start serving in a background thread; returns once ready.

        Raises:
            TransportError: the port is taken or the address cannot be bound, or
                the server thread failed to start.
            RuntimeError: already started.
        """
        if self._controller is not None:
            raise RuntimeError(f"{self.what} already running")
        sock = bind_listener(self.host, self.port)
        self.port = sock.getsockname()[1]
        controller = BoundController(
            self._handler,
            sock,
            smtp_factory=self._smtp_factory,
            server_hostname=SERVER_HOSTNAME,
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
        )
        try:
            controller.start()
        except (OSError, RuntimeError) as exc:
            sock.close()
            raise TransportError(f"{self.what} on {self.host}:{self.port}: {exc}") from exc
        self._controller = controller

    def stop(self) -> None:
        """Stop serving and close the socket; a no-op when not running."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def serve_until_stopped(
        self, *, on_ready: Callable[[Self], None] | None = None, stop: threading.Event | None = None
    ) -> None:
        """Start, then block until SIGINT/SIGTERM (or ``stop`` is set), then stop.

        ``on_ready`` is called once the server listens (the CLI prints the address).
        Signal handlers are installed only from the main thread and restored on return.

        Raises:
            TransportError: the address cannot be bound.
        """
        done = stop if stop is not None else threading.Event()
        previous: dict[signal.Signals, Any] = {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            done.set()

        with self:
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGINT, signal.SIGTERM):
                    previous[signum] = signal.signal(signum, on_signal)
            try:
                if on_ready is not None:
                    on_ready(self)
                # A timed wait keeps the main thread responsive to signals everywhere.
                while not done.wait(0.5):
                    pass
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class CaptureServer(BackgroundSMTPServer):
    """A capture SMTP server on ``host:port`` filing messages into ``maildir``.

    Use as a context manager or call :meth:`start` / :meth:`stop`. After
    :meth:`start`, ``.port`` is the real port (also when 0 was asked for).
    Messages are accepted from anyone for anyone, with SMTPUTF8 and up to
    :data:`DATA_SIZE_LIMIT` bytes.
    """

    what = "capture server"

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
