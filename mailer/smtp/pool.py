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

    async def _take(self) -> Connection:
        """An idle usable connection, else a new one (a slot is held by the caller)."""
        while not self._idle.empty():
            candidate = self._idle.get_nowait()
            if candidate.usable:
                return candidate
            candidate.abort()
            self._all.discard(candidate)
        return await self._connect()

    def _put(self, conn: Connection) -> None:
        """Back to the idle ones; dropped when it broke or an envelope presented on it
        will not be sent (the server discards that transaction)."""
        if conn.presented is not None:
            conn.abort()
        if conn.usable:
            self._idle.put_nowait(conn)
        else:
            self._all.discard(conn)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        async with self._slots:
            conn = await self._take()
            try:
                yield conn
            finally:
                self._put(conn)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PoolSession]:
        """One connection for a run of messages, so that each message's data can carry
        the next one's envelope (``following``, :mod:`mailer.smtp.client`)."""
        async with self._slots:
            session = PoolSession(self)
            try:
                yield session
            finally:
                if session.conn is not None:
                    self._put(session.conn)

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


class PoolSession:
    """A connection of the pool held for a run of messages (:meth:`SmtpPool.session`);
    replaced when it breaks, as the pool would."""

    def __init__(self, pool: SmtpPool) -> None:
        self.pool = pool
        self.conn: Connection | None = None

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        before_data: Callable[[], Awaitable[None]] | None = None,
        following: tuple[str, str] | None = None,
    ) -> SendResult:
        """:meth:`SmtpPool.send` on this session's connection; ``following`` as
        :meth:`Connection.send` takes it. A connection that broke (or holds another
        envelope presented) is replaced first."""
        conn = self.conn
        if conn is not None and (not conn.usable or conn.presented not in (None, (sender, recipient))):
            self.conn = None
            self.pool._put(conn)
            conn = None
        if conn is None:
            conn = self.conn = await self.pool._take()
        return await conn.send(sender, recipient, data, before_data=before_data, following=following)
