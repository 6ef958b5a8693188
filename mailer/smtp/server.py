"""The background aiosmtpd server base, used by the capture server
(:mod:`mailer.smtp.capture`), the bounce receiver (:mod:`mailer.bounces.receive`) and the
test suite's fault server.

The listening socket is bound in the calling thread before the server thread starts
(:func:`bind_listener`, :class:`BoundController`), so a taken port fails at once with
:class:`~mailer.domain.errors.TransportError` and port 0 resolves to a real port that
``.port`` reports. :class:`BackgroundSMTPServer` runs one in a thread (start/stop, or
``with``) and blocks until a signal for the CLI (:meth:`~BackgroundSMTPServer.serve_until_stopped`).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from types import FrameType, TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from mailer.domain.errors import TransportError

#: Many workers may open pooled connections at once; the asyncio default (100) makes
#: the kernel drop SYNs past it, which costs a client a one-second retransmit.
LISTEN_BACKLOG = 1024


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


class BackgroundSMTPServer:
    """An aiosmtpd server on ``host:port`` in a background thread (start/stop, or ``with``).

    Subclasses name themselves in ``what``, may set ``server_hostname`` and
    ``data_size_limit``, and pass their handler; ``smtp_factory`` chooses the protocol
    class (SMTP, or LMTP). After :meth:`start`, ``.port`` is the
    real port, also when 0 was asked for.
    """

    what = "SMTP server"
    #: Greeting host name. Passing one avoids a ``socket.getfqdn()`` DNS lookup that
    #: aiosmtpd would otherwise do for every new connection.
    server_hostname = "smtp.mailer.invalid"
    #: Largest message accepted, in bytes.
    data_size_limit = 64 * 1024 * 1024

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
            server_hostname=self.server_hostname,
            data_size_limit=self.data_size_limit,
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
