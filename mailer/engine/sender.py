"""The send pipeline of one claimed batch: render → throttle → send → decide, on the
event loop, with no database work of its own.

One coroutine per pooled SMTP connection takes the next row as soon as it is free (no
chunk barrier). What touches the database goes through a :class:`Ledger` (in production
the writer thread, :mod:`mailer.engine.writer`):

- just before a message's DATA the sender awaits :meth:`Ledger.mark_in_data`: the mark is
  committed, and the row still this worker's, before any of the data is sent; a row taken
  over by another worker is never sent;
- the reply to the data is written to the journal (:mod:`mailer.engine.journal`) the
  moment it is heard, so a kill loses no heard result;
- results are decided at once (:mod:`mailer.engine.outcomes`) and handed to
  :meth:`Ledger.record` in groups (every ``FLUSH_RESULTS`` results or ``FLUSH_SECONDS``,
  and at the end) without waiting; the merged breaker state comes back later.

When the breaker trips, our sender is refused, the release is no longer sending or a
connection fails (SMTP unusable), no further row is started: rows in flight finish and
are recorded, and the caller hands the rows never started back to the queue.

Messages are rendered ahead (:class:`_RenderAhead`): the rows next in line are asked of
the render process together, so it gets batches of up to :data:`RENDER_AHEAD` messages
instead of one per connection. The first requests are one per connection (the first
messages go at once); once a render has come back the window widens. A row rendered
ahead but never started (stopped) is simply not sent: its render is dropped.

Over 400 lines on purpose (just): one noun, the send pipeline of a batch; the connection
loop, the render-ahead queue and the envelope presented with each data all hand the same
rows and renders to one another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from aiolimiter import AsyncLimiter

from mailer.config import Settings
from mailer.domain.errors import ConfigError, MailerError
from mailer.engine.breaker import Breaker
from mailer.engine.journal import Journal
from mailer.engine.outcomes import Recording, judge
from mailer.engine.planner import Prepared
from mailer.message import AsyncRenderer, Recipient, RenderCancelled, RenderJob
from mailer.message.tokens import Tokens
from mailer.releases.replyto import reply_address
from mailer.runtime import Clock
from mailer.smtp.transport import SendResult, Session, Transport
from mailer.smtp.transport import session as transport_session
from mailer.store.queue import Claimed

log = logging.getLogger("mailer.engine.sender")

#: results are handed over for recording at least this often: every N results ...
FLUSH_RESULTS = 100
#: ... or this many seconds after the previous hand-over, and at the end of each batch
FLUSH_SECONDS = 0.5
#: at most this many messages are rendered ahead of the connections (~10 KB each)
RENDER_AHEAD = 200

__all__ = ["Batch", "LeaseLost", "Ledger", "SendProgress", "Sender"]


class Ledger(Protocol):
    """What the sender needs from the database (answers come back as awaitables; the
    sender never blocks on them)."""

    def mark_in_data(self, delivery_id: int) -> Awaitable[bool]:
        """Commit that the row is in the data exchange; False when the row is no longer
        this worker's (it must not be sent)."""
        ...

    def record(self, recording: Recording, breaker_marks: str) -> Awaitable[tuple[str, int] | None]:
        """Record a group of decided results with this process's new breaker marks;
        gives the release's merged breaker state (window, streak)."""
        ...

    def pause(self, release_id: int, reason: str) -> Awaitable[None]:
        """Pause the release (after every result handed over before)."""
        ...


@dataclass
class SendProgress:
    """Counts a caller may show while a release is sent."""

    attempted: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    #: the release's deliveries, counted when its first batch was claimed
    total: int | None = None


class LeaseLost(Exception):
    """The in-data mark found the row no longer leased to this worker: do not send it."""


@dataclass
class Batch:
    """A claimed batch being sent: rows not yet started, results not yet handed over."""

    release_id: int
    rows: Iterator[Claimed]
    breaker: Breaker
    count: int
    pending: Recording = field(init=False)
    flushed_at: float = field(default_factory=time.monotonic)
    #: no further row is started
    stopped: bool = False
    #: why the release must pause (breaker, our sender refused); set once
    pause_reason: str | None = None
    paused: bool = False
    #: recordings and the pause under way in the ledger
    handed: list[asyncio.Task[None]] = field(default_factory=list)
    #: the first error of a recording
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.pending = Recording(self.release_id)

    def stop(self) -> None:
        """Start no further row (the release is no longer sending)."""
        self.stopped = True


class Sender:
    """Sends claimed batches over ``transport``; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        ledger: Ledger,
        *,
        renders: AsyncRenderer,
        tokens: Tokens,
        journal: Journal,
        clock: Clock,
        on_recorded: Callable[[Recording], None] | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.ledger = ledger
        self.renders = renders
        self.tokens = tokens
        self.journal = journal
        self.clock = clock
        self.on_recorded = on_recorded
        smtp = settings.smtp
        self._rate = AsyncLimiter(smtp.rate_per_second, 1) if smtp.rate_per_second > 0 else None
        self._domain_rate: dict[str, AsyncLimiter] = {}
        self._release_tokens: dict[int, str] = {}
        #: renders asked ahead (:class:`_RenderAhead`), by delivery id, until a connection takes them
        self._ahead: dict[int, asyncio.Task[bytes | str | None]] = {}

    async def send(self, batch: Batch, prepared: Prepared, *, stop: asyncio.Event | None = None) -> None:
        """Send ``batch`` until its rows run out or it stops; return once every result is
        recorded (and the release paused if it must be). Raises the first error of a
        connection or of a recording."""
        senders = min(self.settings.smtp.pool_size, batch.count)
        ahead = _RenderAhead(self, prepared, batch.rows, stop, first=senders)
        try:
            errors = await asyncio.gather(
                *(self._connection(prepared, batch, ahead, stop) for _ in range(senders)), return_exceptions=True
            )
        finally:
            ahead.drop()
        self._hand_over(batch)
        while batch.handed:
            handed, batch.handed = batch.handed, []
            await asyncio.gather(*handed)
        for error in errors:
            if isinstance(error, BaseException):
                raise error
        if batch.error is not None:
            raise batch.error

    async def _connection(
        self, prepared: Prepared, batch: Batch, ahead: _RenderAhead, stop: asyncio.Event | None
    ) -> None:
        """One connection's loop: take the next row, send it, decide its result, and let
        the breaker judge it at once. Without rate limits (and unless
        ``smtp.next_envelope_with_data`` is off), each message's data carries the envelope
        of the next row when its render is ready (:mod:`mailer.smtp.client`): that row is
        this connection's next."""
        smtp = self.settings.smtp
        chain = smtp.next_envelope_with_data and self._rate is None and smtp.rate_per_domain <= 0
        following: Claimed | None = None
        try:
            async with transport_session(self.transport) as session:
                while not batch.stopped:
                    if stop is not None and stop.is_set():
                        batch.stopped = True  # the rows not started go back to the queue
                        return
                    row = following if following is not None else ahead.take()
                    following = None
                    if row is None:
                        return
                    try:
                        result, following = await self._send_one(prepared, row, stop, session, ahead if chain else None)
                    except RenderCancelled:
                        batch.stopped = True  # stopping: this row was not rendered, it goes back too
                        return
                    self._decide(prepared, batch, row, result)
        except BaseException:
            batch.stopped = True
            raise
        finally:
            if following is not None:  # taken, never started: back to the queue with the rest
                self._ahead.pop(following.id, None)

    def _decide(self, prepared: Prepared, batch: Batch, row: Claimed, result: SendResult | str | None) -> None:
        """A row's result: pending for recording, judged by the breaker; stops the batch
        when the row was taken over or the breaker trips."""
        if result is None:
            # Taken over by another worker: the others of this batch likely were too.
            batch.stopped = True
            return
        batch.pending.add(row, result, self.clock(), self.settings.retry)
        if isinstance(result, SendResult):
            bounce_domain = prepared.plan.identity.bounce_domain
            reason = judge(batch.breaker, result, row, bounce_domain=bounce_domain)
            if reason and batch.pause_reason is None:
                batch.pause_reason = reason
                batch.stopped = True
                self._hand_over(batch)  # record, then pause, now
                return
        if len(batch.pending) >= FLUSH_RESULTS or time.monotonic() - batch.flushed_at >= FLUSH_SECONDS:
            self._hand_over(batch)

    def _hand_over(self, batch: Batch) -> None:
        """Hand the pending results to the ledger (not waiting), then the pause if one is due."""
        batch.flushed_at = time.monotonic()
        if len(batch.pending):
            recording, batch.pending = batch.pending, Recording(batch.release_id)
            recorded = self.ledger.record(recording, batch.breaker.take_pending())
            batch.handed.append(asyncio.ensure_future(self._recorded(batch, recording, recorded, self.journal.lines)))
        if batch.pause_reason is not None and not batch.paused:
            batch.paused = True
            batch.handed.append(
                asyncio.ensure_future(self._paused(batch, self.ledger.pause(batch.release_id, batch.pause_reason)))
            )

    async def _recorded(
        self, batch: Batch, recording: Recording, recorded: Awaitable[tuple[str, int] | None], journaled: int
    ) -> None:
        """A recording is done: settle the journal up to it, count it, continue from the
        merged breaker state (and pause when it trips)."""
        try:
            shared = await recorded
        except Exception as exc:
            batch.stopped = True
            batch.error = batch.error or exc
            return
        self.journal.settled(journaled)
        if self.on_recorded is not None:
            self.on_recorded(recording)
        if shared is None:
            return
        batch.breaker.merged(*shared)
        tripped = batch.breaker.tripped()
        if tripped and batch.pause_reason is None:
            batch.pause_reason = tripped
            batch.stopped = True
            self._hand_over(batch)

    @staticmethod
    async def _paused(batch: Batch, paused: Awaitable[None]) -> None:
        try:
            await paused
        except Exception as exc:
            batch.error = batch.error or exc

    async def _send_one(
        self,
        prepared: Prepared,
        row: Claimed,
        stop: asyncio.Event | None,
        session: Session,
        chain: _RenderAhead | None = None,
    ) -> tuple[SendResult | str | None, Claimed | None]:
        """Render (or take the render made ahead) and send one message; a render error (a
        limit passed included) comes back as its text, a row this worker no longer holds
        as None (not sent, nothing to record). A reply to the data is journaled before it
        is returned. With ``chain``, the next row whose render is ready is taken and its
        envelope goes out with this data: it comes back second, to be sent next on this
        session. Raises RenderCancelled when stopping before it was rendered."""
        ahead = self._ahead.pop(row.id, None)
        rendered = await (ahead if ahead is not None else self._render(prepared, row, stop))
        if rendered is None:
            raise RenderCancelled("rendering was stopped")
        if isinstance(rendered, str):
            return rendered, None
        data = rendered
        await self._throttle(row.email)
        bounce_domain = prepared.plan.identity.bounce_domain
        following = chain.take_ready() if chain is not None and (stop is None or not stop.is_set()) else None
        envelope = None
        if following is not None:
            envelope = (self.tokens.verp_address(following.id, bounce_domain), following.email)
        marked = False

        async def mark_in_data() -> None:
            nonlocal marked
            if not await self.ledger.mark_in_data(row.id):
                raise LeaseLost(row.id)
            marked = True

        try:
            result = await session.send(
                self.tokens.verp_address(row.id, bounce_domain),
                row.email,
                data,
                before_data=mark_in_data,
                following=envelope,
            )
        except LeaseLost:
            log.warning(
                "delivery %s was taken over by another worker: not sent by this one",
                row.id,
                extra={"release": row.release_id, "delivery": row.id, "event": "lease_lost"},
            )
            return None, following
        except BaseException:
            if following is not None:
                self._ahead.pop(following.id, None)  # never started: back to the queue
            raise
        if marked:
            self.journal.heard(row.id, result)
        return result, following

    async def _render(self, prepared: Prepared, row: Claimed, stop: asyncio.Event | None) -> bytes | str | None:
        """The message bytes of ``row``, a render error's text, or None when rendering was
        stopped before this row (it goes back to the queue)."""
        plan = prepared.plan
        variant = plan.variants.get(row.segment_id or -1) or plan.variants[plan.segment_order[0]]
        recipient = Recipient(
            email=row.email,
            first_name=row.first_name or "",
            last_name=row.last_name or "",
            outlet=row.outlet or "",
            attributes={k: str(v) for k, v in row.attributes.items()},
            timezone=row.timezone or "",
        )
        sender = self.settings.sender
        # The client's own return-path domain (aligned with its From domain: SPF for DMARC).
        bounce_domain = plan.identity.bounce_domain
        job = RenderJob(
            recipient,
            to_addr=row.email,
            message_id=row.message_id,
            unsubscribe_url=self.tokens.unsubscribe_url(self.settings.web.base_url, row.id),
            unsubscribe_mailto=(
                self.tokens.mailto_unsubscribe(row.id, bounce_domain) if sender.mailto_unsubscribe else None
            ),
            date=self.clock(),
            reply_to=reply_address(self.tokens, self.settings, row.id, plan.identity),
            in_reply_to=row.in_reply_to,
            kit_token=self.tokens.kit(row.id),
            release_token=self._release_token(row.release_id),
            dkim=prepared.dkim,
        )
        try:
            return await self.renders.render(variant.spec, job, stop=stop)
        except RenderCancelled:
            return None
        except ConfigError:
            raise  # the DKIM key became unusable: not this message's fault (as when signing here)
        except MailerError as exc:
            return f"render error: {exc}"

    def _release_token(self, release_id: int) -> str:
        token = self._release_tokens.get(release_id)
        if token is None:
            token = self._release_tokens[release_id] = self.tokens.release_kit(release_id)
        return token

    async def _throttle(self, email: str) -> None:
        if self._rate is not None:
            await self._rate.acquire()
        per_domain = self.settings.smtp.rate_per_domain
        if per_domain > 0:
            domain = email.rpartition("@")[2]
            limiter = self._domain_rate.setdefault(domain, AsyncLimiter(per_domain, 1))
            await limiter.acquire()


class _RenderAhead:
    """The rows of a batch in the order the connections take them, each with its render
    asked of the render process ahead of time (see the module docstring): at first one
    per connection (``first``), then up to :data:`RENDER_AHEAD`."""

    def __init__(
        self, sender: Sender, prepared: Prepared, rows: Iterator[Claimed], stop: asyncio.Event | None, *, first: int
    ) -> None:
        self.sender = sender
        self.prepared = prepared
        self.rows = rows
        self.stop = stop
        self.window = max(1, min(first, RENDER_AHEAD))
        self.queued: deque[Claimed] = deque()

    def take(self) -> Claimed | None:
        """The next row (its render asked), or None when the batch has no more; asks the
        renders of the rows after it, up to the window."""
        self._fill()
        if not self.queued:
            return None
        row = self.queued.popleft()
        task = self.sender._ahead.get(row.id)
        if task is not None and task.done():
            self.window = RENDER_AHEAD  # renders come back: ask for more at a time
        self._fill()
        return row

    def take_ready(self) -> Claimed | None:
        """The next row if its message is rendered (not an error): it can be presented
        with the current message's data; else None (taken the usual way later)."""
        self._fill()
        if not self.queued:
            return None
        task = self.sender._ahead.get(self.queued[0].id)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        if not isinstance(task.result(), bytes):
            return None
        return self.take()

    def _fill(self) -> None:
        while len(self.queued) < self.window:
            row = next(self.rows, None)
            if row is None:
                return
            self.queued.append(row)
            self.sender._ahead[row.id] = asyncio.ensure_future(self.sender._render(self.prepared, row, self.stop))

    def drop(self) -> None:
        """Forget the renders of rows never taken (the batch stopped): cancelled, or
        their outcome read, so that nothing is left pending or unretrieved."""
        while self.queued:
            task = self.sender._ahead.pop(self.queued.popleft().id, None)
            if task is None:
                continue
            if task.done():
                if not task.cancelled():
                    task.exception()
            else:
                task.cancel()
