"""Claim → render → send → record: the delivery engine's work, one batch at a time.

Used by ``mailer run`` (under APScheduler) and ``mailer run --once``. Everything the
engine knows lives in the database; a :class:`Dispatcher` holds only caches (compiled
variants per release) and a circuit-breaker count, so any number of processes may run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiolimiter import AsyncLimiter
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from mailer.app import Runtime
from mailer.db import transaction
from mailer.domain import DeliveryStatus, FailureKind, ReleaseStatus, SuppressionReason, retry_delay, send_scopes
from mailer.domain import Outcome as Result
from mailer.errors import MailerError, StoreError
from mailer.releases import SendPlan, build_send_plan, render_limits, renderer_for, require_approved_plan
from mailer.render import AsyncRenderer, Recipient, RenderCancelled, Renderer, RenderJob, RenderWorker
from mailer.store import deliveries as q
from mailer.store.suppressions import add_suppression
from mailer.tables import Release, ReleaseEvent, Segment
from mailer.tokens import Tokens
from mailer.transport import SendResult, Transport

log = logging.getLogger("mailer.dispatch")

#: results are recorded (one transaction) at least this often: every N results ...
FLUSH_RESULTS = 100
#: ... or this many seconds after the previous recording, and at the end of each batch
FLUSH_SECONDS = 0.5

Signer = Callable[[bytes], bytes]


def worker_name() -> str:
    """A lease owner name unique to this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Progress:
    """Counts a caller may show while a release is sent."""

    attempted: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass
class _Batch:
    """A claimed batch being sent: rows not yet started, results not yet recorded."""

    release_id: int
    rows: Iterator[q.Claimed]
    done: list[tuple[q.Claimed, SendResult | str]] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)
    stopped: bool = False


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
        self.lease = timedelta(seconds=rt.settings.retry.lease_seconds)
        self.on_progress = on_progress
        self.progress: dict[int, Progress] = {}
        self._plans: dict[int, _Prepared] = {}
        self._policy_streak: dict[int, int] = {}
        smtp = rt.settings.smtp
        self._rate = AsyncLimiter(smtp.rate_per_second, 1) if smtp.rate_per_second > 0 else None
        self._domain_rate: dict[str, AsyncLimiter] = {}
        self._last_renew = rt.clock()
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
                release.status = ReleaseStatus.DRAFT.value
                release.updated_at = now
                session.add(
                    ReleaseEvent(
                        release_id=release_id,
                        from_status=ReleaseStatus.APPROVED.value,
                        to_status=ReleaseStatus.DRAFT.value,
                        actor="mailer",
                        note=f"not sent: {exc}",
                        at=now,
                    )
                )
                log.warning("release %s not sent: %s", release_id, exc)
                return False
            if not q.start_release(session, release_id, now):
                return False
            nonce = plan.content_hash[:10]
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
                    message_id_prefix=f"r{release_id}.{nonce}",
                    message_id_domain=self.settings.sender.message_id_domain,
                    now=now,
                )
            session.add(
                ReleaseEvent(
                    release_id=release_id,
                    from_status=ReleaseStatus.APPROVED.value,
                    to_status=ReleaseStatus.SENDING.value,
                    actor=f"mailer ({self.owner})",
                    note="planned",
                    at=now,
                )
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
        with transaction(self.rt.sessions) as session:
            if q.release_status(session, release_id) != ReleaseStatus.SENDING.value:
                return 0
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
        await self._send_claimed(release_id, prepared, claimed)
        return len(claimed)

    async def _send_claimed(self, release_id: int, prepared: _Prepared, claimed: list[q.Claimed]) -> None:
        """Send a claimed batch as a continuous pipeline: one sender per pooled connection
        takes the next row as soon as it is free (no chunk barrier); results are recorded
        every ``FLUSH_RESULTS`` results or ``FLUSH_SECONDS``, and at the end.

        When recording pauses the release (circuit breaker) or a sender fails (SMTP
        unusable), no further row is started; rows in flight finish and are recorded, and
        the rows never started go back to the queue."""
        batch = _Batch(release_id, iter(claimed))
        senders = min(self.settings.smtp.pool_size, len(claimed))
        outcomes = await asyncio.gather(
            *(self._sender(prepared, batch) for _ in range(senders)), return_exceptions=True
        )
        self._flush(batch)
        if batch.stopped:
            self.release_leases()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _sender(self, prepared: _Prepared, batch: _Batch) -> None:
        """One connection's loop: take the next row, send it, buffer its result."""
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
                batch.done.append((row, result))
                if len(batch.done) >= FLUSH_RESULTS or time.monotonic() - batch.flushed_at >= FLUSH_SECONDS:
                    self._flush(batch)
        except BaseException:
            batch.stopped = True
            raise

    def _flush(self, batch: _Batch) -> None:
        """Record the buffered results in one transaction; stop the batch if it paused."""
        batch.flushed_at = time.monotonic()
        if not batch.done:
            return
        done, batch.done = batch.done, []
        if self._record(batch.release_id, [row for row, _ in done], [res for _, res in done]):
            batch.stopped = True
        self.renew_if_due()

    async def _send_one(self, prepared: _Prepared, row: q.Claimed) -> SendResult | str:
        """Render and send one message; a render error (a limit passed included) comes
        back as its text. Raises RenderCancelled when stopping before it was rendered."""
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

        async def mark_in_data() -> None:
            self._mark_in_data(row.id)

        return await self.transport.send(
            self.tokens.verp_address(row.id, sender.bounce_domain), row.email, data, before_data=mark_in_data
        )

    def _mark_in_data(self, delivery_id: int) -> None:
        """Commit "this row is in the data exchange" just before its DATA command.

        One row per message (a crash leaves exactly the rows whose DATA was next
        ``unknown``), so it must be cheap: one Core UPDATE on a connection this dispatcher
        keeps for marks (no pool checkout or ping); on PostgreSQL in autocommit with
        ``synchronous_commit = off``, i.e. a single round trip."""
        try:
            conn = self._marker_connection()
            q.mark_in_data(conn, [delivery_id], self.owner)
            conn.commit()
        except DBAPIError as exc:
            self._close_marker()
            raise StoreError(f"database error: {exc.orig or exc}".splitlines()[0]) from exc

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

    def _record(self, release_id: int, rows: list[q.Claimed], results: list[SendResult | str]) -> bool:
        """Record one group of results in one transaction. True when the circuit breaker
        paused the release."""
        now = self.rt.clock()
        retry = self.settings.retry
        outcomes: list[q.Outcome] = []
        hard: list[tuple[str, str]] = []
        pause_reason: str | None = None
        streak = self._policy_streak.get(release_id, 0)
        for row, res in zip(rows, results, strict=True):
            first = row.first_attempt_at or now
            if isinstance(res, str):
                outcomes.append(
                    q.Outcome(row.id, DeliveryStatus.FAILED, None, res, "render_error", None, first, "failed")
                )
                continue
            status, reason, next_at = self._decide(res, row, first, now)
            if res.kind == FailureKind.RECIPIENT:
                hard.append((row.email, res.reply))
            if res.kind == FailureKind.POLICY:
                streak += 1
                if streak >= retry.policy_failures_to_pause and pause_reason is None:
                    pause_reason = f"{streak} policy refusals in a row (5.7.x); last: {res.reply[:200]}"
            elif res.outcome == Result.SENT:
                streak = 0
            outcomes.append(q.Outcome(row.id, status, res.code, res.reply, reason, next_at, first, status.value))
        self._policy_streak[release_id] = streak
        with transaction(self.rt.sessions) as session:
            q.fast_commit(session)
            q.record_outcomes(session, outcomes, self.owner, now)
            if self.settings.bounces.suppress_hard:
                for email, reply in hard:
                    add_suppression(
                        session, email, reason=SuppressionReason.HARD_BOUNCE, source=f"SMTP {reply[:200]}", now=now
                    )
        progress = self.progress.setdefault(release_id, Progress())
        for o in outcomes:
            progress.attempted += 1
            progress.by_status[o.status.value] = progress.by_status.get(o.status.value, 0) + 1
        if self.on_progress is not None:
            self.on_progress(release_id, progress)
        if pause_reason is not None:
            self._pause(release_id, pause_reason)
            return True
        return False

    def _decide(
        self, res: SendResult, row: q.Claimed, first: datetime, now: datetime
    ) -> tuple[DeliveryStatus, str | None, datetime | None]:
        retry = self.settings.retry
        if res.outcome == Result.SENT:
            return DeliveryStatus.SENT, None, None
        if res.outcome == Result.UNKNOWN:
            return DeliveryStatus.UNKNOWN, "connection lost after the message data", None
        if res.outcome == Result.DEFERRED:
            if now >= first + timedelta(seconds=retry.give_up_after):
                return DeliveryStatus.FAILED, "gave up retrying", None
            delay = retry_delay(row.attempts + 1, retry.schedule)
            return DeliveryStatus.DEFERRED, "temporary failure", now + timedelta(seconds=delay)
        reason = {
            FailureKind.RECIPIENT: "hard_bounce",
            FailureKind.POLICY: "policy",
            FailureKind.MESSAGE: "message_rejected",
        }.get(res.kind or FailureKind.OTHER, "rejected")
        return DeliveryStatus.FAILED, reason, None

    def _pause(self, release_id: int, reason: str) -> None:
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            release = session.get(Release, release_id)
            if release is None or release.status != ReleaseStatus.SENDING.value:
                return
            q.set_release_status(session, release_id, ReleaseStatus.PAUSED, now, reason=reason)
            session.add(
                ReleaseEvent(
                    release_id=release_id,
                    from_status=ReleaseStatus.SENDING.value,
                    to_status=ReleaseStatus.PAUSED.value,
                    actor="mailer (circuit breaker)",
                    note=reason,
                    at=now,
                )
            )
        log.warning("release %s paused: %s", release_id, reason)

    # -- housekeeping ------------------------------------------------------------------

    def renew_if_due(self) -> None:
        now = self.rt.clock()
        if now - self._last_renew >= self.lease / 3:
            self.renew_leases()

    def renew_leases(self) -> None:
        now = self.rt.clock()
        with transaction(self.rt.sessions) as session:
            q.renew_leases(session, self.owner, now, self.lease)
        self._last_renew = now

    def sweep(self) -> tuple[int, int]:
        """Leases of dead workers: requeue, or ``unknown`` inside the data exchange."""
        with transaction(self.rt.sessions) as session:
            return q.sweep_expired_leases(session, self.rt.clock())

    def release_leases(self) -> int:
        """Hand rows claimed but not yet in the data exchange back to the queue (on a clean
        stop, or when a batch stopped early); closes the in-data marker connection."""
        self._close_marker()
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
                q.set_release_status(session, release_id, final, now)
                session.add(
                    ReleaseEvent(
                        release_id=release_id,
                        from_status=ReleaseStatus.SENDING.value,
                        to_status=final.value,
                        actor="mailer",
                        note=", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
                        at=now,
                    )
                )
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
