"""The aiosmtplib client: a pool of reused connections, one command at a time
(``smtp.client = "aiosmtplib"``). Results as :class:`mailer.smtp.transport.SendResult`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiosmtplib

from mailer.config import SmtpSettings
from mailer.domain.addresses import smtp_envelope
from mailer.domain.errors import TransportError
from mailer.domain.states import Outcome
from mailer.smtp.transport import SendResult, reply_result, tls_context


class SmtpPool:
    """Up to ``settings.pool_size`` connections, opened lazily and reused."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._all: set[aiosmtplib.SMTP] = set()

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.tls == "implicit",
            start_tls=s.tls == "starttls",
            tls_context=tls_context(s),
            timeout=s.command_timeout,
            local_hostname=s.helo_name,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        client = self._client()
        try:
            await asyncio.wait_for(
                client.connect(timeout=self.settings.connect_timeout), self.settings.connect_timeout * 2
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise TransportError(
                f"SMTP {self.settings.host}:{self.settings.port}: login refused: {exc.message}"
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransportError(
                f"cannot connect to SMTP {self.settings.host}:{self.settings.port}: {_describe(exc)}"
            ) from exc
        self._all.add(client)
        return client

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        async with self._slots:
            client: aiosmtplib.SMTP | None = None
            while not self._idle.empty():
                candidate = self._idle.get_nowait()
                if candidate.is_connected:
                    client = candidate
                    break
                self._all.discard(candidate)
            if client is None:
                client = await self._connect()
            try:
                yield client
            finally:
                if client.is_connected:
                    self._idle.put_nowait(client)
                else:
                    self._all.discard(client)

    async def send(
        self, sender: str, recipient: str, data: bytes, *, before_data: Callable[[], Awaitable[None]] | None = None
    ) -> SendResult:
        """Send one message to one recipient. ``before_data`` runs just before the DATA
        command (the caller marks the row as "in the data exchange" there)."""
        async with self._connection() as client:
            stage = "mail"
            try:
                if client.is_ehlo_or_helo_needed:  # EHLO now, to know whether the relay offers SMTPUTF8
                    try:
                        await client.ehlo()
                    except aiosmtplib.SMTPHeloError:
                        await client.helo()
                envelope = smtp_envelope(
                    sender, recipient, setting=self.settings.smtputf8, offered=client.supports_extension("smtputf8")
                )
                if isinstance(envelope, str):
                    return SendResult(Outcome.FAILED, None, envelope, "rcpt")
                encoding = "utf-8" if envelope.smtputf8 else "ascii"
                await client.mail(
                    envelope.sender, options=["SMTPUTF8"] if envelope.smtputf8 else None, encoding=encoding
                )
                stage = "rcpt"
                await client.rcpt(envelope.recipient, encoding=encoding)
                stage = "data"
                if before_data is not None:
                    try:
                        await before_data()
                    except BaseException:
                        client.close()  # MAIL and RCPT are open on the server: drop them with the connection
                        raise
                response = await client.data(data, timeout=self.settings.data_timeout)
                return reply_result(response.code, response.message, "data")
            except aiosmtplib.SMTPResponseException as exc:
                await _reset(client)
                if exc.code in (421,) or not client.is_connected:
                    client.close()
                return reply_result(exc.code, exc.message, stage)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError, TimeoutError) as exc:
                client.close()
                if stage == "data":
                    return SendResult(Outcome.UNKNOWN, None, f"connection lost during data: {_describe(exc)}", stage)
                return SendResult(Outcome.DEFERRED, None, f"connection lost: {_describe(exc)}", stage)

    async def close(self) -> None:
        for client in list(self._all):
            if client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), 5)
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()
        self._all.clear()


async def _reset(client: aiosmtplib.SMTP) -> None:
    """After a refused command, RSET so the connection can carry the next message."""
    if not client.is_connected:
        return
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
