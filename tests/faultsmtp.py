"""A fault-injecting SMTP server for the tests.

In the spirit of GNU Mailman's ``testing/mta.py`` and aiosmtplib's ``tests/smtpd.py``:
a real aiosmtpd server on 127.0.0.1 and a free port, served from its own thread, so
test code in this process *and* worker subprocesses can connect to it. The controls
live here, in the test process, and may be changed between and during tests::

    with running_fault_server() as server:
        server.fail_mail("553 5.1.8 Sender address rejected: Domain not found", times=None)
        server.rcpt_reply["gone@example.com"] = "550 5.1.1 No such user"
        server.fail_rcpt("full@example.com", "452 4.2.2 Mailbox full", times=2)
        server.fail_data("slow@example.com", "451 4.3.0 Try later")
        server.drop_after_data("lost@example.com", count_as_accepted=True)
        server.stall_after_data("stuck@example.com", seconds=2.0)
        server.greeting_delay = 0.5
        ... send via ("127.0.0.1", server.port) ...
        assert server.copies_of("full@example.com") == 1
        assert server.duplicates() == []

MAIL faults apply to any sender (``fail_mail``; ``mail_attempts`` counts MAIL commands).
Other faults are keyed by the exact envelope recipient. A counted fault fires ``times``
times (``None``: every time) and then the next queued fault for that recipient
applies, or, when none is left, the plain ``rcpt_reply`` / ``data_reply`` entry, or
acceptance. DATA faults look at every recipient of the transaction and the first one
with a fault decides (our client sends one recipient per transaction). Any reply
starting ``421`` is sent and the connection is then closed, as RFC 5321 §3.8 says a
server shutting down does.

Handlers are hooks (``handle_RCPT`` / ``handle_DATA``); the protocol is subclassed
only for the slow greeting and the connection count, which aiosmtpd has no hook for.
Nothing is written to disk; an accepted message costs one header scan and two list
appends, so thousands of messages over hundreds of connections stay quick.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailer.smtp.server import BoundController, bind_listener

HOST = "127.0.0.1"
SERVER_HOSTNAME = "faultsmtp.test"
DATA_SIZE_LIMIT = 64 * 1024 * 1024

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_FOLD = re.compile(rb"\r?\n(?=[ \t])")

#: the key of MAIL faults, which apply to any sender
_ANY_SENDER = "*"

#: Long enough to outlast any test; the wait ends when the connection closes (aiosmtpd
#: cancels the session task) or the server stops (the controller cancels all tasks).
_HANG_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """One accepted copy: a message for one envelope recipient."""

    message_id: str | None
    recipient: str
    sender: str


class _Kind(Enum):
    REPLY = "reply"
    DROP = "drop"
    STALL = "stall"


@dataclass(slots=True)
class _Fault:
    kind: _Kind
    remaining: int | None  # None: fires every time
    reply: str = ""
    seconds: float = 0.0
    count_as_accepted: bool = False


def _message_id(content: bytes) -> str | None:
    """The Message-ID header's value (angle brackets kept), or None if absent."""
    end = content.find(b"\r\n\r\n")
    if end < 0:
        end = content.find(b"\n\n")
    head = _FOLD.sub(b"", content if end < 0 else content[:end])
    match = _MESSAGE_ID.search(head)
    if match is None:
        return None
    return match.group(1).decode("utf-8", "replace").strip() or None


def _check_times(times: int | None) -> None:
    if times is not None and times < 1:
        raise ValueError(f"times must be a positive number or None, not {times!r}")


def _check_reply(reply: str) -> None:
    if len(reply) < 3 or not reply[:3].isdigit() or reply[0] not in "2345":
        raise ValueError(f"not an SMTP reply line: {reply!r}")


class FaultSMTPServer:
    """A real SMTP server whose replies the test chooses; see the module docstring.

    All controls and all inspection methods are thread-safe. ``rcpt_reply`` and
    ``data_reply`` are plain dicts of standing replies (recipient → reply line) that
    apply whenever no counted fault is pending; mutate them in place.
    """

    def __init__(self) -> None:
        self.host = HOST
        self.port = 0
        #: Seconds to wait before sending the 220 greeting on each new connection.
        self.greeting_delay: float = 0.0
        self.rcpt_reply: dict[str, str] = {}
        self.data_reply: dict[str, str] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._mail_faults: dict[str, deque[_Fault]] = {}
        self._mail_attempts = 0
        self._rcpt_faults: dict[str, deque[_Fault]] = {}
        self._data_faults: dict[str, deque[_Fault]] = {}
        self._accepted: list[Accepted] = []
        self._raw: list[bytes] = []
        self._rcpt_attempts: Counter[str] = Counter()
        self._connections = 0
        self._controller: BoundController | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        if self._controller is not None:
            raise RuntimeError("fault server already running")
        sock = bind_listener(self.host, 0)
        self.port = sock.getsockname()[1]
        controller = BoundController(
            _Handler(self),
            sock,
            smtp_factory=self._make_smtp,
            server_hostname=SERVER_HOSTNAME,
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller
        with self._lock:
            # start() opened and closed one probe connection; it is not a client's.
            self._connections = 0

    def stop(self) -> None:
        """Stop serving; pending stalls and open connections are cancelled."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _make_smtp(self, handler: object, **kwargs: Any) -> SMTP:
        return _FaultSMTP(self, handler, **kwargs)

    # -- controls --------------------------------------------------------------------

    def fail_mail(self, reply: str, *, times: int | None = 1) -> None:
        """Answer MAIL FROM (whatever the sender) with ``reply`` the next ``times`` times."""
        _check_reply(reply)
        self._queue(self._mail_faults, _ANY_SENDER, _Fault(_Kind.REPLY, times, reply=reply))

    def fail_rcpt(self, recipient: str, reply: str, *, times: int | None = 1) -> None:
        """Answer RCPT TO for ``recipient`` with ``reply`` the next ``times`` times."""
        _check_reply(reply)
        self._queue(self._rcpt_faults, recipient, _Fault(_Kind.REPLY, times, reply=reply))

    def fail_data(self, recipient: str, reply: str, *, times: int | None = 1) -> None:
        """Answer the end of DATA with ``reply`` the next ``times`` times.

        The message is not recorded as accepted. A ``421`` reply also closes the
        connection.
        """
        _check_reply(reply)
        self._queue(self._data_faults, recipient, _Fault(_Kind.REPLY, times, reply=reply))

    def drop_after_data(self, recipient: str, *, times: int | None = 1, count_as_accepted: bool = False) -> None:
        """Read the whole message, then close the connection without replying.

        With ``count_as_accepted`` the copy is recorded as accepted first: a real
        server may have committed the message before the connection died.
        """
        fault = _Fault(_Kind.DROP, times, count_as_accepted=count_as_accepted)
        self._queue(self._data_faults, recipient, fault)

    def stall_after_data(
        self,
        recipient: str,
        *,
        seconds: float,
        times: int | None = 1,
        count_as_accepted: bool = False,
    ) -> None:
        """Read the whole message, then wait ``seconds`` before replying.

        If the client is still connected afterwards, the message is accepted and
        recorded as usual. If it hung up (it timed out), nothing is recorded unless
        ``count_as_accepted`` recorded the copy before the wait.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        fault = _Fault(_Kind.STALL, times, seconds=seconds, count_as_accepted=count_as_accepted)
        self._queue(self._data_faults, recipient, fault)

    def reset(self) -> None:
        """Forget every fault, standing reply, record and counter; keep serving."""
        with self._lock:
            self.greeting_delay = 0.0
            self.rcpt_reply.clear()
            self.data_reply.clear()
            self._mail_faults.clear()
            self._mail_attempts = 0
            self._rcpt_faults.clear()
            self._data_faults.clear()
            self._accepted.clear()
            self._raw.clear()
            self._rcpt_attempts.clear()
            self._connections = 0

    def _queue(self, table: dict[str, deque[_Fault]], recipient: str, fault: _Fault) -> None:
        _check_times(fault.remaining)
        with self._lock:
            table.setdefault(recipient, deque()).append(fault)

    def _take(self, table: dict[str, deque[_Fault]], recipient: str) -> _Fault | None:
        """Consume one firing of the recipient's current fault, if any."""
        with self._lock:
            faults = table.get(recipient)
            if not faults:
                return None
            fault = faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    faults.popleft()
                    if not faults:
                        del table[recipient]
            return fault

    # -- inspection ------------------------------------------------------------------

    @property
    def accepted(self) -> list[Accepted]:
        """A snapshot of every accepted copy, in order of acceptance."""
        with self._lock:
            return list(self._accepted)

    @property
    def raw(self) -> list[bytes]:
        """A snapshot of the accepted messages' bytes; ``raw[i]`` goes with ``accepted[i]``."""
        with self._lock:
            return list(self._raw)

    @property
    def connections(self) -> int:
        """Connections opened since start or the last :meth:`reset`."""
        with self._lock:
            return self._connections

    def copies_of(self, recipient: str) -> int:
        """How many copies were accepted for ``recipient``."""
        with self._lock:
            return sum(1 for a in self._accepted if a.recipient == recipient)

    @property
    def mail_attempts(self) -> int:
        """How many MAIL FROM commands arrived, whatever the reply."""
        with self._lock:
            return self._mail_attempts

    def rcpt_attempts(self, recipient: str) -> int:
        """How many times RCPT TO named ``recipient``, whatever the reply."""
        with self._lock:
            return self._rcpt_attempts[recipient]

    def duplicates(self) -> list[tuple[str, str]]:
        """(Message-ID, recipient) pairs accepted more than once, in first-seen order.

        Copies without a Message-ID cannot be told apart and are left out.
        """
        with self._lock:
            seen = Counter((a.message_id, a.recipient) for a in self._accepted if a.message_id)
        return [(mid, rcpt) for (mid, rcpt), n in seen.items() if mid is not None and n > 1]

    def wait_for_accepted(self, count: int, *, timeout: float) -> bool:
        """Block until at least ``count`` copies are accepted; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._accepted) >= count, timeout)

    # -- called from the server thread -----------------------------------------------

    def _record(self, envelope: Envelope) -> None:
        content: bytes = envelope.original_content or b""
        message_id = _message_id(content)
        sender = envelope.mail_from or ""
        with self._changed:
            for rcpt in envelope.rcpt_tos:
                self._accepted.append(Accepted(message_id, rcpt, sender))
                self._raw.append(content)
            self._changed.notify_all()

    def _count_mail(self) -> None:
        with self._lock:
            self._mail_attempts += 1

    def _count_rcpt(self, recipient: str) -> None:
        with self._lock:
            self._rcpt_attempts[recipient] += 1

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1


async def _reply_and_close(server: SMTP, reply: str) -> str:
    """Send ``reply`` and close the connection; never returns normally.

    Closing makes aiosmtpd cancel this session's task, which ends the wait below.
    """
    await server.push(reply)
    await _hang_up(server)
    return reply  # pragma: no cover - the wait above is always cancelled


async def _hang_up(server: SMTP) -> None:
    transport = server.transport
    if transport is not None:
        transport.close()
    await asyncio.sleep(_HANG_SECONDS)


class _Handler:
    """aiosmtpd hooks that consult the owning :class:`FaultSMTPServer`."""

    def __init__(self, owner: FaultSMTPServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """Advertise PIPELINING (RFC 2920) as real relays do. aiosmtpd reads one command
        line at a time from its stream, so it serves pipelined groups correctly; it just
        does not say so by itself."""
        session.host_name = hostname  # aiosmtpd leaves this to the hook when one exists
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        owner = self.owner
        owner._count_mail()
        fault = owner._take(owner._mail_faults, _ANY_SENDER)
        if fault is not None and not fault.reply.startswith("2"):
            if fault.reply.startswith("421"):
                return await _reply_and_close(server, fault.reply)
            return fault.reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        owner = self.owner
        owner._count_rcpt(address)
        fault = owner._take(owner._rcpt_faults, address)
        reply = fault.reply if fault is not None else owner.rcpt_reply.get(address)
        if reply is None or reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return reply or "250 2.1.5 OK"
        if reply.startswith("421"):
            return await _reply_and_close(server, reply)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        owner = self.owner
        fault: _Fault | None = None
        standing: str | None = None
        for rcpt in envelope.rcpt_tos:
            fault = owner._take(owner._data_faults, rcpt)
            if fault is not None:
                break
        if fault is None:
            for rcpt in envelope.rcpt_tos:
                standing = owner.data_reply.get(rcpt)
                if standing is not None:
                    fault = _Fault(_Kind.REPLY, None, reply=standing)
                    break
        if fault is None:
            owner._record(envelope)
            return "250 2.0.0 OK"
        if fault.kind is _Kind.REPLY:
            if fault.reply.startswith("2"):
                owner._record(envelope)
                return fault.reply
            if fault.reply.startswith("421"):
                return await _reply_and_close(server, fault.reply)
            return fault.reply
        if fault.count_as_accepted:
            owner._record(envelope)
        if fault.kind is _Kind.DROP:
            await _hang_up(server)
        await asyncio.sleep(fault.seconds)
        if not fault.count_as_accepted:
            owner._record(envelope)
        return "250 2.0.0 OK"


class _FaultSMTP(SMTP):
    """aiosmtpd's protocol plus a slow greeting and a connection count.

    aiosmtpd has no hook before the 220 greeting, hence the subclass.
    """

    def __init__(self, owner: FaultSMTPServer, handler: object, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner

    async def _handle_client(self) -> None:
        self._owner._count_connection()
        delay = self._owner.greeting_delay
        if delay > 0:
            await asyncio.sleep(delay)
        await super()._handle_client()


@contextmanager
def running_fault_server() -> Iterator[FaultSMTPServer]:
    """Start a :class:`FaultSMTPServer` on a free port; stop it on exit."""
    server = FaultSMTPServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
