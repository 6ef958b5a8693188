"""Claim → render → send → record: the delivery engine's work, one batch at a time.

Used by ``mailer run`` (under APScheduler) and ``mailer run --once``. Everything the
engine knows lives in the database; a :class:`Dispatcher` holds only caches (compiled
variants per release), its view of each release's circuit breaker and its journal of
heard results, so any number of processes may run.

**What a result does to its row.** :mod:`mailer.domain.status` says who is at fault
(``SendResult.fault``), why (``reason``) and whether the address is dead (``hard``);
this table is the engine's one decision (:meth:`Dispatcher._outcome`):

=====================================  ==============================================
result                                 row
=====================================  ==============================================
2xx after the data                     ``sent``
connection lost after the data         ``unknown`` (never resent automatically)
5xx, recipient, hard (5.1.1 ...)       ``failed`` + suppressed (``bounces.suppress_hard``)
5xx, **our sender** (MAIL FROM         back to ``queued``: not an attempt, the give-up
refused, 5.1.7/5.1.8, SPF/DKIM/DMARC,  clock not started, never failed, suppressed or
"no PTR", relay denied)                scored — and the release **pauses at once**
5xx, the message (size, content,       ``failed`` (this message only; nobody suppressed)
spam)
5xx, remote policy (5.7.1 at RCPT or   ``deferred`` with backoff, ``failed`` at give-up;
DATA), or a network/DNS fault          never suppressed or scored
other 5xx                              ``failed`` (not suppressed)
4xx, anything (our sender included)    ``deferred`` with backoff, ``failed`` at give-up
=====================================  ==============================================

Why remote policy refusals are deferred, not failed: a ``5.7.1`` at RCPT or DATA is
about *us* (our IP, our content, the relay's rules of the day) at least as often as
about the address, and when a relay starts refusing a release, the rows it refused
before the breaker paused the release would otherwise be lost to live journalists
(``failed`` is final). Deferred, they are tried again once the pause is lifted, with the
normal backoff, and still end as ``failed`` at ``retry.give_up_after``. The circuit
breaker (:mod:`mailer.engine.breaker`) counts these refusals, message refusals and temporary
refusals of our sender per result, over every worker process, and pauses the release on
a streak or a rate.

**Leases.** A batch's leases are renewed by a timer task (every third of
``retry.lease_seconds``) as long as the worker holds rows, whatever the relay does, so a
lease shorter than the DATA timeout is allowed. The same task checks every
``WATCH_SECONDS`` that the release is still ``sending``: a pause or cancel stops new rows
from starting within about a second and hands the unstarted rows back. The in-data mark
succeeds only for a row this worker still holds; a row it lost is never sent.

**Crash safety.** A reply to a message's data is written to this worker's journal
(:mod:`mailer.engine.journal`) the moment it is heard, before anything else; a killed worker's
journal is replayed by the next worker on the host before leases are swept, so only a
message whose data exchange was under way (at most one per connection) becomes
``unknown``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiolimiter import AsyncLimiter
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from mailer.domain.errors import MailerError, StoreError
from mailer.domain.states import DeliveryStatus, ReleaseStatus, SuppressionReason, retry_delay, send_scopes
from mailer.domain.states import Outcome as Result
from mailer.domain.status import Fault, Reason
from mailer.engine import journal
from mailer.engine.breaker import Breaker, sender_pause_reason
from mailer.message import AsyncRenderer, Recipient, RenderCancelled, Renderer, RenderJob, RenderWorker
from mailer.message.tokens import Tokens
from mailer.releases import holds, workflow
from mailer.releases.fence import SendFence
from mailer.releases.plan import SendPlan, build_send_plan, render_limits, renderer_for, require_approved_plan
from mailer.runtime import Runtime
from mailer.smtp.transport import SendResult, Transport
from mailer.store import deliveries as q
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.suppressions import add_suppression
from mailer.store.tables import Release, Segment

log = logging.getLogger("mailer.engine.dispatch")

#: results are recorded (one transaction) at least this often: every N results ...
FLUSH_RESULTS = 100
#: ... or this many seconds after the previous recording, and at the end of each batch
FLUSH_SECONDS = 0.5
#: while sending a batch, check this often that its release is still ``sending``
WATCH_SECONDS = 1.0

Signer = Callable[[bytes], bytes]


def worker_name() -> str:
    """A lease owner name unique to this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Progress:
    """Counts a caller may show while a release is sent."""

    attempted: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class LeaseLost(Exception):
    """The in-data mark found the row no longer leased to this worker: do not send it."""


@dataclass
class _Batch:
    """A claimed batch being sent: rows not yet started, results not yet recorded."""

    release_id: int
    rows: Iterator[q.Claimed]
    breaker: Breaker
    done: list[tuple[q.Claimed, SendResult | str]] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)
    #: no further row is started
    stopped: bool = False
    #: why the release must pause (breaker, our sender refused); set once
    pause_reason: str | None = None
    paused: bool = False


@dataclass
class _Prepared:
    plan: SendPlan
    scopes: tuple[str, ...]


class Dispatcher:
    """Plans due releases and sends their deliveries; see module docstring."""

    def __init__(
        self,
        rt: Runtime,
        transport: Transport,
        *,
        owner: str | None = None,
        signer: Signer | None = None,
        on_progress: Callable[[int, Progress], None] | None = None,
    ) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.transport = transport
        self.owner = owner or worker_name()
        self.signer = signer
        self.tokens = Tokens.from_settings(rt.settings)
        # Variants compile, and messages render, in render processes under [render] limits;
        # messages off the event loop.
        self.renderer: Renderer = renderer_for(rt.settings)
        self.renders = AsyncRenderer(
            RenderWorker(self.renderer.templates_dir, self.renderer.sources, render_limits(rt.settings))
        )
        self._stop: asyncio.Event | None = None
        self.fence = SendFence(rt.settings.paths.data_dir)
        self.lease = timedelta(seconds=rt.settings.retry.lease_seconds)
        self.on_progress = on_progress
        self.progress: dict[int, Progress] = {}
        self._plans: dict[int, _Prepared] = {}
        self.journal = journal.Journal(journal.directory_for(rt.settings), self.owner)
        smtp = rt.settings.smtp
        self._rate = AsyncLimiter(smtp.rate_per_second, 1) if smtp.rate_per_second > 0 else None
        self._domain_rate: dict[str, AsyncLimiter] = {}
        self._marker: Connection | None = None

    # -- planning ------------------------------------------------------------------------

    def plan_due(self) -> list[int]:
        """Start every approved release whose time has come: verify its approval, then
        plan its deliveries in the same transaction. Returns the releases started."""
        started: list[int] = []
        with transaction(self.rt.sessions) as session:
            due = q.due_release_ids(session, self.rt.clock())
        for release_id in due:
            if self._start(release_id):
                started.append(release_id)
        return started

    def _start(self, release_id: int) -> bool:
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            release = session.get(Release, release_id)
            if release is None or release.status != ReleaseStatus.APPROVED.value:
                return False
            try:
                plan = build_send_plan(session, release_id, self.renderer, self.settings)
                require_approved_plan(session, release_id, plan)
            except MailerError as exc:
                # What would be sent is no longer what was approved: back to draft.
                workflow.try_move(
                    session,
                    release_id,
                    ReleaseStatus.APPROVED,
                    ReleaseStatus.DRAFT,
                    actor="mailer",
                    now=now,
                    note=f"not sent: {exc}",
                )
                log.warning("release %s not sent: %s", release_id, exc)
                return False
            reason = holds.start_hold(
                session, release, content_hash=plan.content_hash, now=now, settings=self.settings, fence=self.fence
            )
            if reason is not None:
                if holds.hold(session, release, reason, now=now):
                    log.warning("release %s waits for a person: %s", release_id, reason)
                return False
            if not workflow.try_move(
                session,
                release_id,
                ReleaseStatus.APPROVED,
                ReleaseStatus.SENDING,
                actor=f"mailer ({self.owner})",
                now=now,
                note="planned",
            ):
                return False
            for segment_id in plan.segment_order:
                segment = session.get(Segment, segment_id)
                if segment is None:
                    continue
                q.plan_segment(
                    session,
                    release_id=release_id,
                    segment_id=segment_id,
                    rule=segment.rule,
                    scopes=send_scopes(plan.client_slug, plan.topics),
                    message_id_domain=self.settings.sender.message_id_domain,
                    now=now,
                )
            session.flush()
            # Last before the commit, so before any message can go out: a fence that cannot
            # be written rolls the start back (the release stays approved and unsent).
            holds.record_start(
                session, release, content_hash=plan.content_hash, fence=self.fence, now=now, worker=self.owner
            )
        self._plans[release_id] = _Prepared(plan, send_scopes(plan.client_slug, plan.topics))
        return True

    def _prepared(self, release_id: int) -> _Prepared:
        cached = self._plans.get(release_id)
        if cached is None:
            with transaction(self.rt.sessions) as session:
                plan = build_send_plan(session, release_id, self.renderer, self.settings)
                require_approved_plan(session, release_id, plan)
            cached = self._plans[release_id] = _Prepared(plan, send_scopes(plan.client_slug, plan.topics))
        return cached

    # -- sending -------------------------------------------------------------------------

    async def drain(self, *, stop: asyncio.Event | None = None) -> int:
        """Send every delivery that is due now, release after release, until none is left
        (deferred rows whose retry time has not come are left for later). Returns the
        number of messages attempted."""
        total = 0
        self._stop = stop
        while stop is None or not stop.is_set():
            with transaction(self.rt.sessions) as session:
                releases = q.sending_release_ids(session)
            worked = 0
            for release_id in releases:
                if stop is not None and stop.is_set():
                    break
                worked += await self.send_batch(release_id)
            total += worked
            if worked == 0:
                break
        return total

    async def send_batch(self, release_id: int) -> int:
        """Claim one batch of the release's due rows, send them, record the results.
        Returns how many rows were claimed (0: nothing due, or the release is not sending)."""
        try:
            prepared = self._prepared(release_id)
        except MailerError as exc:
            self._pause(release_id, f"cannot prepare the release: {exc}")
            return 0
        now = self.rt.clock()
        marks = self.fence.ledger()  # before the database: see mailer.releases.fence
        with transaction(self.rt.sessions) as session:
            if q.release_status(session, release_id) != ReleaseStatus.SENDING.value:
                return 0
            held = holds.ledger_hold(session, release_id, marks, fence=self.fence)
            if held is not None:
                if workflow.hold_sending(session, release_id, held, now=now):
                    log.warning("release %s paused, waits for a person: %s", release_id, held)
                return 0
            window, streak = q.breaker_state(session, release_id)
            claimed = q.claim_batch(
                session,
                release_id=release_id,
                scopes=prepared.scopes,
                owner=self.owner,
                now=now,
                lease=self.lease,
                limit=self.settings.retry.batch_size,
            )
        if not claimed:
            return 0
        breaker = Breaker(self.settings.breaker, release_id, window, streak)
        await self._send_claimed(_Batch(release_id, iter(claimed), breaker), prepared, len(claimed))
        return len(claimed)

    async def _send_claimed(self, batch: _Batch, prepared: _Prepared, count: int) -> None:
        """Send a claimed batch as a continuous pipeline: one sender per pooled connection
        takes the next row as soon as it is free (no chunk barrier); results are recorded
        every ``FLUSH_RESULTS`` results or ``FLUSH_SECONDS``, and at the end. A watcher
        task renews the leases and notices a pause or cancel while the batch runs.

        When the breaker trips, our sender is refused, the release is no longer sending or
        a sender fails (SMTP unusable), no further row is started; rows in flight finish
        and are recorded, and the rows never started go back to the queue."""
        senders = min(self.settings.smtp.pool_size, count)
        watcher = asyncio.create_task(self._watch(batch))
        try:
            outcomes = await asyncio.gather(
                *(self._sender(prepared, batch) for _ in range(senders)), return_exceptions=True
            )
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
        self._flush(batch)
        if batch.stopped:
            self.release_leases()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _sender(self, prepared: _Prepared, batch: _Batch) -> None:
        """One connection's loop: take the next row, send it, buffer its result, and let
        the breaker judge it at once."""
        try:
            while not batch.stopped:
                if self._stop is not None and self._stop.is_set():
                    batch.stopped = True  # the rows not started go back to the queue
                    return
                row = next(batch.rows, None)
                if row is None:
                    return
                try:
                    result = await self._send_one(prepared, row)
                except RenderCancelled:
                    batch.stopped = True  # stopping: this row was not rendered, it goes back too
                    return
                if result is None:
                    # Taken over by another worker: the others of this batch likely were too.
                    batch.stopped = True
                    continue
                batch.done.append((row, result))
                if isinstance(result, SendResult):
                    tripped = batch.breaker.add(result, retry=row.attempts > 0)
                    reason = sender_pause_reason(result, batch.release_id, self.settings.sender.bounce_domain)
                    if (reason or tripped) and batch.pause_reason is None:
                        batch.pause_reason = reason or tripped
                        batch.stopped = True
                        self._flush(batch)  # record, then pause, now
                        continue
                if len(batch.done) >= FLUSH_RESULTS or time.monotonic() - batch.flushed_at >= FLUSH_SECONDS:
                    self._flush(batch)
        except BaseException:
            batch.stopped = True
            raise

    async def _watch(self, batch: _Batch) -> None:
        """While the batch runs: renew its leases every third of the lease time, and stop
        it when its release is no longer ``sending`` (paused, cancelled by anyone)."""
        renew_every = self.lease.total_seconds() / 3
        tick = min(WATCH_SECONDS, renew_every)
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            if time.monotonic() - renewed >= renew_every:
                self.renew_leases()
                renewed = time.monotonic()
            if not batch.stopped and self._release_status(batch.release_id) != ReleaseStatus.SENDING.value:
                log.info("release %s is no longer sending: handing unstarted rows back", batch.release_id)
                batch.stopped = True

    def _release_status(self, release_id: int) -> str | None:
        """The release's status, read without taking SQLite's write lock."""
        with self.rt.sessions() as session:
            session.connection(execution_options={"sqlite_deferred": True})
            return q.release_status(session, release_id)

    def _flush(self, batch: _Batch) -> None:
        """Record the buffered results in one transaction (merging the breaker's state);
        stop the batch and pause the release when the breaker or a sender refusal says so."""
        batch.flushed_at = time.monotonic()
        if batch.done:
            done, batch.done = batch.done, []
            tripped = self._record(batch.release_id, [row for row, _ in done], [res for _, res in done], batch.breaker)
            self.journal.settled()
            if tripped and batch.pause_reason is None:
                batch.pause_reason = tripped
                batch.stopped = True
        if batch.pause_reason is not None and not batch.paused:
            batch.paused = True
            self._pause(batch.release_id, batch.pause_reason)

    async def _send_one(self, prepared: _Prepared, row: q.Claimed) -> SendResult | str | None:
        """Render and send one message; a render error (a limit passed included) comes back
        as its text, a row this worker no longer holds as None (not sent, nothing to
        record). A reply to the data is journaled before it is returned. Raises
        RenderCancelled when stopping before it was rendered."""
        variant = (
            prepared.plan.variants.get(row.segment_id or -1) or prepared.plan.variants[prepared.plan.segment_order[0]]
        )
        recipient = Recipient(
            email=row.email,
            first_name=row.first_name or "",
            last_name=row.last_name or "",
            outlet=row.outlet or "",
            attributes={k: str(v) for k, v in row.attributes.items()},
        )
        sender = self.settings.sender
        job = RenderJob(
            recipient,
            to_addr=row.email,
            message_id=row.message_id,
            unsubscribe_url=self.tokens.unsubscribe_url(self.settings.web.base_url, row.id),
            unsubscribe_mailto=(
                self.tokens.mailto_unsubscribe(row.id, sender.bounce_domain) if sender.mailto_unsubscribe else None
            ),
            date=self.rt.clock(),
        )
        try:
            data = await self.renders.render(variant.spec, job, stop=self._stop)
        except RenderCancelled:
            raise
        except MailerError as exc:
            return f"render error: {exc}"
        if self.signer is not None:
            data = self.signer(data)
        await self._throttle(row.email)
        marked = False

        async def mark_in_data() -> None:
            nonlocal marked
            self._mark_in_data(row.id)
            marked = True

        try:
            result = await self.transport.send(
                self.tokens.verp_address(row.id, sender.bounce_domain), row.email, data, before_data=mark_in_data
            )
        except LeaseLost:
            log.warning("delivery %s was taken over by another worker: not sent by this one", row.id)
            return None
        if marked:
            self.journal.heard(row.id, result)
        return result

    def _mark_in_data(self, delivery_id: int) -> None:
        """Commit "this row is in the data exchange" just before its DATA command; raise
        :class:`LeaseLost` when the row is no longer this worker's (the transport then
        drops the transaction without sending the data).

        One row per message (a crash leaves exactly the rows whose DATA was next
        ``unknown``), so it must be cheap: one Core UPDATE on a connection this dispatcher
        keeps for marks (no pool checkout or ping); on PostgreSQL in autocommit with
        ``synchronous_commit = off``, i.e. a single round trip."""
        try:
            conn = self._marker_connection()
            marked = q.mark_in_data(conn, [delivery_id], self.owner)
            conn.commit()
        except DBAPIError as exc:
            self._close_marker()
            raise StoreError(f"database error: {exc.orig or exc}".splitlines()[0]) from exc
        if not marked:
            raise LeaseLost(delivery_id)

    def _marker_connection(self) -> Connection:
        if self._marker is None or self._marker.closed or self._marker.invalidated:
            conn = self.rt.engine.connect()
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                # Safe against a killed worker; only a server crash can drop the last marks.
                conn.exec_driver_sql("SET synchronous_commit = off")
                conn.commit()
            conn.detach()  # its session settings must not go back into the pool
            self._marker = conn
        return self._marker

    def _close_marker(self) -> None:
        if self._marker is not None:
            marker, self._marker = self._marker, None
            try:
                marker.close()
            except DBAPIError:
                log.debug("closing the in-data marker connection failed", exc_info=True)

    async def _throttle(self, email: str) -> None:
        if self._rate is not None:
            await self._rate.acquire()
        per_domain = self.settings.smtp.rate_per_domain
        if per_domain > 0:
            domain = email.rpartition("@")[2]
            limiter = self._domain_rate.setdefault(domain, AsyncLimiter(per_domain, 1))
            await limiter.acquire()

    def _record(
        self,
        release_id: int,
        rows: list[q.Claimed],
        results: list[SendResult | str],
        breaker: Breaker | None = None,
        *,
        owner: str | None = None,
    ) -> str | None:
        """Record one group of results in one transaction, with the hard bounces'
        suppressions and (given ``breaker``) its new marks merged into the release's shared
        breaker state. ``owner``: whose leases (default this worker; a dead worker's when
        its journal is replayed). Returns the pause reason when the merged breaker trips."""
        now = self.rt.clock()
        outcomes: list[q.Outcome] = []
        hard: dict[int, tuple[str, str]] = {}
        for row, res in zip(rows, results, strict=True):
            if isinstance(res, str):
                first = row.first_attempt_at or now
                outcomes.append(
                    q.Outcome(row.id, DeliveryStatus.FAILED, None, res, "render_error", None, first, "failed")
                )
                continue
            outcome = self._outcome(res, row, now)
            outcomes.append(outcome)
            if res.hard and outcome.status is DeliveryStatus.FAILED:
                hard[row.id] = (row.email, res.reply)
        shared: tuple[str, int] | None = None
        ledger: tuple[str, int, str | None, int] | None = None
        with transaction(self.rt.sessions) as session:
            q.fast_commit(session)
            written = q.record_outcomes(session, outcomes, owner or self.owner, now)
            if written:
                key, sequence = q.advance_ledger(session, release_id, len(written))
                ledger = (release_store.database_identity(session), release_id, key, sequence)
            if self.settings.bounces.suppress_hard:
                for delivery_id, (email, reply) in hard.items():
                    if delivery_id in written:
                        add_suppression(
                            session, email, reason=SuppressionReason.HARD_BOUNCE, source=f"SMTP {reply[:200]}", now=now
                        )
            if breaker is not None:
                marks = breaker.take_pending()
                shared = q.merge_breaker(session, release_id, marks, keep=self.settings.breaker.window)
        if ledger is not None:
            # After the commit: a crash in between only leaves the fence behind.
            try:
                self.fence.record_ledger(*ledger)
            except StoreError as exc:
                log.error("release %s: %s (a restored copy of the database may go unnoticed)", release_id, exc)
        if owner is None:
            progress = self.progress.setdefault(release_id, Progress())
            for o in outcomes:
                progress.attempted += 1
                progress.by_status[o.status.value] = progress.by_status.get(o.status.value, 0) + 1
            if self.on_progress is not None:
                self.on_progress(release_id, progress)
        if breaker is None or shared is None:
            return None
        breaker.merged(*shared)
        return breaker.tripped()

    def _outcome(self, res: SendResult, row: q.Claimed, now: datetime) -> q.Outcome:
        """What ``res`` does to its row: the table in the module docstring."""
        first = row.first_attempt_at or now
        label = res.reason.value if res.reason else None
        # A refusal of our sender says so in its event, whatever becomes of the row, so
        # the report counts it after the row was sent (mailer.store.reports.sender_side).
        detail = f"{label}: {res.reply}" if res.fault is Fault.SENDER and label else None

        def row_is(status: DeliveryStatus, reason: str | None, next_at: datetime | None = None) -> q.Outcome:
            return q.Outcome(row.id, status, res.code, res.reply, reason, next_at, first, status.value, detail=detail)

        if res.outcome == Result.SENT:
            return row_is(DeliveryStatus.SENT, None)
        if res.outcome == Result.UNKNOWN:
            return row_is(DeliveryStatus.UNKNOWN, "connection lost after the message data")
        if res.outcome == Result.FAILED:
            if res.fault is Fault.SENDER:
                # Not the recipient's doing and not an attempt: back to the queue as it was.
                return q.Outcome(
                    row.id,
                    DeliveryStatus.QUEUED,
                    res.code,
                    res.reply,
                    label,
                    None,
                    row.first_attempt_at,
                    "requeued",
                    attempted=False,
                    detail=detail,
                )
            if res.hard:
                return row_is(DeliveryStatus.FAILED, "hard_bounce")
            if res.fault is Fault.MESSAGE:
                return row_is(DeliveryStatus.FAILED, label or "message_rejected")
            if res.reason is not Reason.POLICY_BLOCKED and res.fault is not Fault.NETWORK:
                return row_is(DeliveryStatus.FAILED, label or "rejected")
        retry = self.settings.retry
        if now >= first + timedelta(seconds=retry.give_up_after):
            return row_is(DeliveryStatus.FAILED, "gave up retrying")
        delay = retry_delay(row.attempts + 1, retry.schedule)
        return row_is(DeliveryStatus.DEFERRED, label or "temporary failure", now + timedelta(seconds=delay))

    def _pause(self, release_id: int, reason: str) -> None:
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            if not workflow.try_move(
                session,
                release_id,
                ReleaseStatus.SENDING,
                ReleaseStatus.PAUSED,
                actor="mailer (circuit breaker)",
                now=now,
                note=reason,
            ):
                return
        log.warning("release %s paused: %s", release_id, reason)

    # -- housekeeping ------------------------------------------------------------------

    def renew_leases(self) -> int:
        """Extend the leases of every row this worker holds; returns how many."""
        with transaction(self.rt.sessions) as session:
            return q.renew_leases(session, self.owner, self.rt.clock(), self.lease)

    def sweep(self) -> tuple[int, int]:
        """Dead workers: first record what their journals say they heard (this host's),
        then expired leases: requeue, or ``unknown`` inside the data exchange. Returns
        (requeued, unknown)."""
        self.replay_journals()
        with transaction(self.rt.sessions) as session:
            return q.sweep_expired_leases(session, self.rt.clock())

    def replay_journals(self) -> int:
        """Record the results in the journals of this host's dead workers, for the rows
        they still hold (or that were swept to ``unknown`` meanwhile), then delete those
        journals. Returns the rows recorded."""
        replayed = 0
        for owner, path in journal.dead_journals(self.journal.path.parent):
            heard = {h.delivery_id: h.result for h in journal.read(path)}
            rows: list[q.Claimed] = []
            if heard:
                with transaction(self.rt.sessions) as session:
                    rows = q.held_rows(session, owner, list(heard))
            by_release: dict[int, list[q.Claimed]] = {}
            for row in rows:
                by_release.setdefault(row.release_id, []).append(row)
            for release_id, group in by_release.items():
                self._record(release_id, group, [heard[r.id] for r in group], owner=owner)
            path.unlink(missing_ok=True)
            replayed += len(rows)
            if rows:
                log.info("recorded %d results heard by dead worker %s (its journal)", len(rows), owner)
        return replayed

    def release_leases(self) -> int:
        """Hand rows claimed but not yet in the data exchange back to the queue (on a clean
        stop, or when a batch stopped early); closes the in-data marker connection and the
        (settled) journal."""
        self._close_marker()
        self.journal.close()
        with transaction(self.rt.sessions) as session:
            return q.release_leases(session, self.owner, self.rt.clock())

    def finish_releases(self) -> list[int]:
        """Sending releases with no pending row become ``sent`` (or ``partial`` when some
        rows failed or are unknown). Returns the releases finished."""
        done: list[int] = []
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            for release_id in q.cancelled_with_pending(session):
                q.cancel_pending(session, release_id, now)
            for release_id in q.sending_release_ids(session):
                if q.pending_count(session, release_id):
                    continue
                counts = q.status_counts(session, release_id)
                bad = counts.get(DeliveryStatus.FAILED.value, 0) + counts.get(DeliveryStatus.UNKNOWN.value, 0)
                final = ReleaseStatus.PARTIAL if bad else ReleaseStatus.SENT
                note = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                if workflow.try_move(
                    session, release_id, ReleaseStatus.SENDING, final, actor="mailer", now=now, note=note
                ):
                    done.append(release_id)
        for release_id in done:
            self._plans.pop(release_id, None)
        return done

    async def run_once(self, *, stop: asyncio.Event | None = None) -> int:
        """Everything due now: sweep, plan, send until nothing is due, finish. Returns
        messages attempted."""
        self.sweep()
        self.plan_due()
        attempted = await self.drain(stop=stop)
        self.release_leases()
        self.finish_releases()
        return attempted
