"""A pool of SMTP connections (:class:`SmtpPool`), the :class:`~mailer.smtp.transport.Transport`
the engine sends through: up to ``smtp.pool_size`` :class:`~mailer.smtp.client.Connection` s,
opened lazily and reused."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from mailer.config import SmtpSettings
from mailer.smtp.client import Connection
from mailer.smtp.transport import SendResult


class SmtpPool:
    """Up to ``settings.pool_size`` :class:`Connection` s, opened lazily and reused; a
    connection that broke or was closed (421) is replaced on next use. Implements
    :class:`mailer.smtp.transport.Transport`."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._all: set[Connection] = set()
        self._local_name: str | None = settings.helo_name

    async def _connect(self) -> Connection:
        if self._local_name is None:
            self._local_name = await asyncio.get_running_loop().run_in_executor(None, socket.getfqdn)
        conn = await Connection.open(self.settings, local_name=self._local_name)
        self._all.add(conn)
        return conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        async with self._slots:
            conn: Connection | None = None
            while not self._idle.empty():
                candidate = self._idle.get_nowait()
                if candidate.usable:
                    conn = candidate
                    break
                candidate.abort()
                self._all.discard(candidate)
            if conn is None:
                conn = await self._connect()
            try:
                yield conn
            finally:
                if conn.usable:
                    self._idle.put_nowait(conn)
                else:
                    self._all.discard(conn)

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        before_data: Callable[[], Awaitable[None]] | None = None,
    ) -> SendResult:
        """Send one message to one recipient over a pooled connection. ``before_data``
        runs just before the DATA command. Raises :class:`TransportError` when no
        connection can be opened."""
        async with self._connection() as conn:
            return await conn.send(sender, recipient, data, before_data=before_data)

    async def close(self) -> None:
        """QUIT every open connection."""
        connections, self._all = list(self._all), set()
        while not self._idle.empty():
            self._idle.get_nowait()
        await asyncio.gather(*(conn.quit() for conn in connections))
