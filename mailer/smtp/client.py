"""The SMTP client: one session on asyncio streams (:class:`Connection`), pipelining
when the server offers it. :mod:`mailer.smtp.pool` keeps several of them open.

Why our own: aiosmtplib waits for every reply before the next command, four round
trips per message (MAIL, RCPT, DATA, the data). When the server advertises PIPELINING
(RFC 2920) this client sends ``MAIL FROM``, ``RCPT TO`` and ``DATA`` in one write (DATA
last in the group, as RFC 2920 3.1 allows) and reads the three replies, so a message costs
two round trips: the envelope, then the data. A refusal at MAIL/RCPT/DATA leaves a
``RSET`` owed; it goes out in the same write as the next message's group. A server that
answers 354 although it refused every recipient gets an empty message (``.`` alone, as
Postfix's client does) and a RSET. Without PIPELINING every command waits for its reply
(RFC 5321 as written). ``before_data`` (the engine's "in data" mark) runs after the 354
and before the first byte of the message: the message is never handed over unmarked.

Time limits: one deadline per transaction phase, not a timer per reply. The envelope
(the owed RSET, MAIL, RCPT and DATA up to its 354) must be answered within
``smtp.command_timeout`` in total (RFC 5321 4.5.3.2 asks for 5 minutes per command; a
relay that needs more than that for the whole envelope is treated as stuck); then the
message data must be taken and its final reply given within ``smtp.data_timeout`` (the
10 minutes RFC 5321 asks for after the final ``.``, which also covers writing the data).
Our own ``before_data`` runs between the two, outside both. Set-up steps (greeting, EHLO,
STARTTLS, AUTH) have ``connect_timeout`` each and QUIT a few seconds, as before. A
deadline is a number on the connection; a single timer per connection (re-armed lazily,
at most a few times per budget) aborts the socket when the deadline passes, so a relay
that trickles a reply byte by byte, stalls in the middle of one or never answers is cut
off on time, and a transaction costs no timer of its own.

One recipient per transaction, so every reply belongs to exactly one delivery. The
outcomes are :class:`mailer.smtp.transport.SendResult` values, decided by
:func:`mailer.domain.status.classify_reply`:

* a reply to MAIL, RCPT, DATA or to the message data: ``classify_reply`` with that stage;
* the connection lost, a reply that is not SMTP, or a timeout *before the message data
  was handed to the socket* (including while waiting for 354): ``deferred`` — the server
  cannot have the message;
* the same *after* the data was handed over: ``unknown`` — it may have been accepted,
  and it is never resent automatically;
* a 421 reply (RFC 5321 3.8: the server is closing the channel): recorded, then the
  connection is closed.

The next message's envelope may go out with this message's data (issue 20): given
``following`` (its sender and recipient), the data, its final ``.`` and the next group
(MAIL, RCPT, DATA) are one write, as RFC 2920 3.1 allows ("the actual transfer of message
content is explicitly allowed to be the first command in a group"); the reply to the data
comes first, in order, so :meth:`Connection.send` still returns this message's result
before anything of the next is known, and the next :meth:`Connection.send` for exactly
that envelope only reads its replies. A message costs one write and about one wake-up
instead of two. Nothing of the next message is handed over: its data waits for its own
354 and its ``before_data`` mark, so ``unknown`` keeps meaning exactly "this row's data
was handed over and its fate was not heard". A connection whose presented envelope will
not be sent (the batch stopped) is dropped, never given an empty message: the server
discards a transaction whose data never ended.

Raised: :class:`mailer.domain.errors.TransportError` only when SMTP cannot be used at all
(connect, greeting, EHLO/HELO, TLS or authentication refused or failing).

Over 400 lines on purpose: one noun (an SMTP session); the pipelined group, the reply
reader, the deadlines and the stream's bookkeeping (owed RSET, 421) guard one another's
assumptions about where the stream is.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

from mailer.config import SmtpSettings
from mailer.domain.addresses import SmtpEnvelope, smtp_envelope
from mailer.domain.errors import TransportError
from mailer.domain.states import Outcome
from mailer.message.wire import CrlfReady, KnownDots
from mailer.message.wire import WireReady as WireReady  # re-exported: its home before issue 20
from mailer.smtp.transport import SendResult, reply_result, tls_context

#: Longest reply line accepted (RFC 5321 4.5.3.1.5 allows 512 octets; be lenient).
_LINE_LIMIT = 64 * 1024
_QUIT_SECONDS = 5.0
#: A timer may fire this much before its time (the loop's clock resolution): it counts.
_EARLY = 0.001


class ConnectionLost(Exception):
    """The connection broke: closed, reset, timed out, or the peer stopped speaking SMTP."""


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: the code and the text of every line (RFC 5321 4.2), without codes."""

    code: int
    lines: tuple[str, ...]

    @property
    def message(self) -> str:
        """The text lines joined by newlines, as aiosmtplib presents them."""
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()


_CRLF = "\r\n"

_REPLY_LINE = re.compile(rb"^([2-5]\d\d)([ -]|$)(.*)$", re.DOTALL)


def parse_reply_line(raw: bytes) -> tuple[int, bool, str]:
    """Split one reply line into (code, is_last_line, text). RFC 5321 4.2: ``ddd-text``
    continues a multi-line reply, ``ddd text`` or ``ddd`` ends it. Raises
    :class:`ConnectionLost` for anything else (the peer is not speaking SMTP)."""
    line = raw.rstrip(b"\r\n")
    match = _REPLY_LINE.match(line)
    if match is None:
        raise ConnectionLost(f"not an SMTP reply: {line[:80]!r}")
    text = match.group(3).decode("utf-8", "replace").strip()
    return int(match.group(1)), match.group(2) != b"-", text


def dot_stuff(data: bytes) -> bytes:
    """The DATA payload for ``data`` (RFC 5321 4.5.2 and 2.3.8): every line ending made
    CRLF, a ``.`` doubled at the start of every line, a final CRLF ensured, and the
    terminating ``.`` CRLF appended. :class:`WireReady` data is taken as it is;
    :class:`~mailer.message.wire.CrlfReady` data is not scanned for line ends (the
    renderer's messages: issue 20, ~2/3 of this function's time on a 10 KB message), and
    :class:`~mailer.message.wire.KnownDots` data not at all (its dotted lines are listed)."""
    kind = type(data)
    if kind is WireReady:
        return data + b".\r\n"
    if kind is KnownDots:  # a CrlfReady message whose dotted lines are listed: no scan
        view = memoryview(data)
        pieces: list[bytes | memoryview] = []
        last = 0
        for at in data.dots:  # type: ignore[attr-defined]
            pieces += (view[last:at], b".")
            last = at
        pieces += (view[last:], b".\r\n")
        return b"".join(pieces)
    if kind is not CrlfReady:
        crlf = data.count(b"\r\n")
        if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
            data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    if data.startswith(b".") or b"\r\n." in data:  # clean data (most messages) is not copied
        if data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _safe_address(address: str) -> bool:
    return not any(c in address for c in "\r\n<>")


class Connection:
    """One SMTP session, set up by :meth:`open`, carrying one message at a time."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: SmtpSettings,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._settings = settings
        self.extensions: dict[str, str] = {}
        self._rset_owed = False
        self._closed = False
        self._loop = asyncio.get_running_loop()
        #: loop time by which the current phase must be done (None: no phase running)
        self._deadline: float | None = None
        #: the seconds the current deadline was set for (for the message when it passes)
        self._budget = 0.0
        #: the one timer that enforces deadlines; never later than the current deadline
        self._alarm: asyncio.TimerHandle | None = None
        self._expired = False
        #: the (sender, recipient) whose MAIL, RCPT and DATA went out with the last data,
        #: replies not read yet (see the module docstring)
        self.presented: tuple[str, str] | None = None

    # -- set-up ----------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: SmtpSettings, *, local_name: str) -> Connection:
        """Connect, read the greeting, EHLO (HELO when EHLO is refused), STARTTLS or
        implicit TLS as configured, AUTH when a username is set. Every step waits at most
        ``connect_timeout``. Raises :class:`TransportError` when any of it fails."""
        where = f"SMTP {settings.host}:{settings.port}"
        context = tls_context(settings)
        limit = settings.connect_timeout
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_connection(
                    settings.host,
                    settings.port,
                    ssl=context if settings.tls == "implicit" else None,
                    server_hostname=settings.host if settings.tls == "implicit" else None,
                    limit=_LINE_LIMIT,
                )
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to {where}: {_describe(exc)}") from exc
        conn = cls(reader, writer, settings)
        try:
            greeting = await conn._reply_within(limit)
            if greeting.code != 220:
                raise TransportError(f"{where} refused the session: {greeting}")
            await conn._hello(local_name, where)
            if context is not None and settings.tls == "starttls":
                await conn._starttls(context, local_name, where)
            if settings.username:
                await conn._login(where)
        except ConnectionLost as exc:
            conn.abort()
            raise TransportError(f"cannot connect to {where}: {exc}") from exc
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _hello(self, local_name: str, where: str) -> None:
        limit = self._settings.connect_timeout
        reply = await self._command_within(f"EHLO {local_name}", limit)
        if reply.code == 250:
            self.extensions = _extensions(reply)
            return
        if reply.code < 500:  # 4xx: the server is there but will not talk now
            raise TransportError(f"{where} refused EHLO: {reply}")
        reply = await self._command_within(f"HELO {local_name}", limit)  # RFC 5321 3.2: fall back
        if reply.code != 250:
            raise TransportError(f"{where} refused HELO: {reply}")
        self.extensions = {}

    async def _starttls(self, context: ssl.SSLContext, local_name: str, where: str) -> None:
        """RFC 3207: STARTTLS, the handshake, then EHLO again (what was learnt before TLS
        must be forgotten)."""
        if "STARTTLS" not in self.extensions:
            raise TransportError(f"{where} does not offer STARTTLS")
        reply = await self._command_within("STARTTLS", self._settings.connect_timeout)
        if reply.code != 220:
            raise TransportError(f"{where} refused STARTTLS: {reply}")
        try:
            await self._writer.start_tls(
                context,
                server_hostname=self._settings.host,
                ssl_handshake_timeout=self._settings.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"{where}: TLS failed: {_describe(exc)}") from exc
        await self._hello(local_name, where)

    async def _login(self, where: str) -> None:
        """RFC 4954 AUTH with PLAIN (RFC 4616) or else LOGIN, as the server offers."""
        s = self._settings
        user = s.username or ""
        password = s.password.get_secret_value() if s.password else ""
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        limit = s.connect_timeout
        if "PLAIN" in mechanisms:
            token = _b64(f"\0{user}\0{password}")
            reply = await self._command_within(f"AUTH PLAIN {token}", limit)
        elif "LOGIN" in mechanisms:
            reply = await self._command_within("AUTH LOGIN", limit)
            if reply.code == 334:
                reply = await self._command_within(_b64(user), limit)
            if reply.code == 334:
                reply = await self._command_within(_b64(password), limit)
        else:
            offered = " ".join(mechanisms) or "none"
            raise TransportError(f"{where}: no supported AUTH mechanism (offered: {offered})")
        if reply.code != 235:
            raise TransportError(f"{where}: login refused: {reply}")

    # -- one message ------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """False once the connection was closed or the peer hung up."""
        return not self._closed and not self._reader.at_eof() and not self._writer.is_closing()

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    def _envelope(self, sender: str, recipient: str) -> SmtpEnvelope | str:
        """The envelope of one transaction, or why it cannot be sent."""
        if not (_safe_address(sender) and _safe_address(recipient)):
            return "address contains CR, LF, < or >"
        return smtp_envelope(sender, recipient, setting=self._settings.smtputf8, offered="SMTPUTF8" in self.extensions)

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        before_data: Callable[[], Awaitable[None]] | None = None,
        following: tuple[str, str] | None = None,
    ) -> SendResult:
        """One transaction for one recipient; see the module docstring for the outcomes.
        ``before_data`` runs after RCPT was accepted, just before the DATA command.
        ``following``: the (sender, recipient) the caller sends next on this connection,
        whose envelope may go out with this data (then :attr:`presented`; the caller
        must send exactly that next, or drop the connection). Any exception (from
        ``before_data``, or cancellation) closes the connection and propagates."""
        if self.presented is not None and self.presented != (sender, recipient):
            self.abort()
            raise RuntimeError(f"{self.presented} was presented on this connection, not {(sender, recipient)}")
        envelope = self._envelope(sender, recipient)
        if isinstance(envelope, str):
            return SendResult(Outcome.FAILED, None, envelope, "rcpt")
        after = None
        if following is not None and self.pipelining:
            checked = self._envelope(*following)
            after = None if isinstance(checked, str) else (checked, following)
        try:
            return await self._transaction(envelope, data, before_data, after)
        except BaseException:
            self.abort()
            raise
        finally:
            self._deadline = None  # idle in the pool: no limit (a pending timer finds none)

    @staticmethod
    def _group(envelope: SmtpEnvelope) -> bytes:
        """MAIL, RCPT and (last) DATA of one transaction, as one pipelined group."""
        utf8 = " SMTPUTF8" if envelope.smtputf8 else ""
        return f"MAIL FROM:<{envelope.sender}>{utf8}{_CRLF}RCPT TO:<{envelope.recipient}>{_CRLF}DATA{_CRLF}".encode()

    async def _transaction(
        self,
        envelope: SmtpEnvelope,
        data: bytes,
        before_data: Callable[[], Awaitable[None]] | None,
        following: tuple[SmtpEnvelope, tuple[str, str]] | None = None,
    ) -> SendResult:
        utf8 = " SMTPUTF8" if envelope.smtputf8 else ""
        mail = f"MAIL FROM:<{envelope.sender}>{utf8}"
        rcpt = f"RCPT TO:<{envelope.recipient}>"
        stage = "mail"
        self._arm(self._settings.command_timeout)  # the envelope, up to the 354
        try:
            if self.pipelining:
                # RFC 2920 3.1: RSET, MAIL, RCPT and (last) DATA in one group; replies come in order.
                rset = self._rset_owed
                if self.presented is not None:
                    # went out with the last data, which ended a transaction: no RSET owed
                    self.presented = None
                    rset = False
                else:
                    await self._write((b"RSET" + _CRLF.encode() if rset else b"") + self._group(envelope))
                if rset:
                    refused = self._after_rset(await self._read())
                    if refused is not None:
                        return refused  # the connection is closed: the other replies do not matter
                # All three replies are read (they come in order), unless one is 421: the
                # server then closes the channel (RFC 5321 3.8) and sends no more.
                reply = await self._read()
                if reply.code != 250:
                    return await self._refused_in_group(reply, "mail", replies_left=2)
                stage = "rcpt"
                reply = await self._read()
                if reply.code not in (250, 251):
                    return await self._refused_in_group(reply, "rcpt", replies_left=1)
                stage = "data"
                reply = await self._read()
            else:
                if self._rset_owed:
                    refused = self._after_rset(await self._command("RSET"))
                    if refused is not None:
                        return refused
                reply = await self._command(mail)
                if reply.code != 250:
                    return self._refused(reply, "mail")
                stage = "rcpt"
                reply = await self._command(rcpt)
                if reply.code not in (250, 251):
                    return self._refused(reply, "rcpt")
                stage = "data"
                reply = await self._command("DATA")
            if reply.code != 354:
                return self._refused(reply, "data")
            self._deadline = None  # our own work is not the relay's time
            if before_data is not None:
                await before_data()
            payload = dot_stuff(data)
        except ConnectionLost as exc:
            self.abort()
            return SendResult(Outcome.DEFERRED, None, f"connection lost: {exc}", stage)
        if following is not None:
            payload += self._group(following[0])  # the next envelope in the same write
        # From here on the server may have the message: no outcome but its reply is certain.
        self._arm(self._settings.data_timeout)  # the data and the reply to its final "."
        try:
            await self._write(payload)
            reply = await self._read()
        except ConnectionLost as exc:
            self.abort()
            return SendResult(Outcome.UNKNOWN, None, f"connection lost during data: {exc}", "data")
        if reply.code == 421:
            self.abort()
        elif following is not None:
            self.presented = following[1]
        return reply_result(reply.code, reply.message, "data")

    async def _refused_in_group(self, reply: Reply, stage: str, *, replies_left: int) -> SendResult:
        """MAIL or RCPT refused in a pipelined group: read the replies still owed to the
        group so the stream stays in step. A compliant server refuses the DATA too (RFC
        2920 3.1); one that answers 354 anyway gets an empty message, ``.`` alone, which it
        cannot deliver (no accepted recipient). If the server hangs up meanwhile, the
        refusal stands and the connection is dropped."""
        if reply.code != 421:
            try:
                for _ in range(replies_left):
                    last = await self._read()
                if last.code == 354:
                    await self._write(b"." + _CRLF.encode())
                    await self._read()
            except ConnectionLost:
                self.abort()
        return self._refused(reply, stage)

    def _refused(self, reply: Reply, stage: str) -> SendResult:
        """A refusal at MAIL, RCPT or the DATA command: the transaction is left open on
        the server, so a RSET is owed before the next one (RFC 5321 4.1.1.5)."""
        if reply.code == 421:
            self.abort()
        else:
            self._rset_owed = True
        return reply_result(reply.code, reply.message, stage)

    def _after_rset(self, reply: Reply) -> SendResult | None:
        """None when RSET succeeded. Otherwise the session cannot be trusted: close it; the
        message was not tried, so it is deferred (not a verdict on the recipient)."""
        if reply.code == 250:
            self._rset_owed = False
            return None
        self.abort()
        return SendResult(Outcome.DEFERRED, reply.code, f"RSET refused: {reply}", "mail")

    # -- wire ------------------------------------------------------------------------

    async def _command(self, line: str) -> Reply:
        """One command and its reply, within the deadline already set."""
        await self._write(f"{line}{_CRLF}".encode())
        return await self._read()

    async def _command_within(self, line: str, timeout: float) -> Reply:
        """One command whose reply must come within ``timeout`` seconds of its own (set-up, QUIT)."""
        self._arm(timeout)
        try:
            return await self._command(line)
        finally:
            self._deadline = None

    async def _reply_within(self, timeout: float) -> Reply:
        self._arm(timeout)
        try:
            return await self._read()
        finally:
            self._deadline = None

    async def _write(self, data: bytes) -> None:
        """Hand ``data`` to the socket; wait for the kernel to take it only when it did not
        at once. The deadline bounds the wait (it aborts the socket, which ends it)."""
        try:
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size() == 0:
                return  # all of it went to the socket: drain() would return at once
            await self._writer.drain()
        except OSError as exc:
            raise self._lost(exc) from exc

    async def _read(self) -> Reply:
        """Read one (possibly multi-line) reply before the deadline."""
        lines: list[str] = []
        try:
            while True:
                raw = await self._reader.readline()
                if not raw.endswith(b"\n"):
                    raise self._lost(None)
                code, last, text = parse_reply_line(raw)
                lines.append(text)
                if last:
                    return Reply(code, tuple(lines))
        except (OSError, ValueError) as exc:  # ValueError: a line over the limit
            raise self._lost(exc) from exc

    def _lost(self, exc: BaseException | None) -> ConnectionLost:
        """What a failed read or write means: the deadline passed (the socket was aborted
        for it), or what ``exc`` says, or the server hung up."""
        if self._expired:
            return ConnectionLost(f"no reply within {self._budget:g}s")
        if exc is None:
            return ConnectionLost("connection closed by the server")
        return ConnectionLost(_describe(exc))

    # -- deadlines ---------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        """The current phase must be done within ``seconds`` from now. Costs a timer only
        when the one armed would fire after the new deadline (or none is armed)."""
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        self._budget = seconds
        alarm = self._alarm
        if alarm is None or alarm.when() > deadline:
            if alarm is not None:
                alarm.cancel()
            self._alarm = self._loop.call_at(deadline, self._on_alarm)

    def _on_alarm(self) -> None:
        """The timer fired: abort the socket if the deadline has passed, else wait for it."""
        self._alarm = None
        deadline = self._deadline
        if deadline is None or self._closed:
            return  # no phase running: the next _arm arms again
        if self._loop.time() + _EARLY >= deadline:
            self._expired = True
            self.abort()  # a pending read sees end of file, a pending drain a lost connection
        else:
            self._alarm = self._loop.call_at(deadline, self._on_alarm)

    # -- closing ---------------------------------------------------------------------

    def abort(self) -> None:
        """Drop the connection at once (its state can no longer be trusted)."""
        if not self._closed:
            self._closed = True
            if self._alarm is not None:
                self._alarm.cancel()
                self._alarm = None
            self._writer.transport.abort()

    async def quit(self) -> None:
        """QUIT politely (RFC 5321 4.1.1.10), waiting a few seconds at most, then close."""
        if self._closed:
            return
        with suppress(ConnectionLost):
            await self._command_within("QUIT", _QUIT_SECONDS)
        self.abort()


def _extensions(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper-case) → their parameters (RFC 5321 4.1.1.1)."""
    found: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.partition(" ")
        found[keyword.upper()] = params.strip()
        if keyword.upper().startswith("AUTH="):  # old servers: "AUTH=LOGIN PLAIN"
            found.setdefault("AUTH", keyword[5:] + " " + params)
    return found


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
