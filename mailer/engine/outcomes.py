"""What a result does to its row: the engine's one decision (:func:`decide`), and the
breaker's judgement of the release (:func:`judge`). Pure: no I/O, the clock passed in.

:mod:`mailer.domain.status` says who is at fault (``SendResult.fault``), why (``reason``)
and whether the address is dead (``hard``); this table is what the engine makes of it:

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
a render error (a limit passed too)    ``failed`` (``render_error``)
=====================================  ==============================================

Why remote policy refusals are deferred, not failed: a ``5.7.1`` at RCPT or DATA is
about *us* (our IP, our content, the relay's rules of the day) at least as often as
about the address, and when a relay starts refusing a release, the rows it refused
before the breaker paused the release would otherwise be lost to live journalists
(``failed`` is final). Deferred, they are tried again once the pause is lifted, with the
normal backoff, and still end as ``failed`` at ``retry.give_up_after``. The circuit
breaker (:mod:`mailer.engine.breaker`) counts these refusals, message refusals and
temporary refusals of our sender per result, over every worker process, and pauses the
release on a streak or a rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailer.config import RetrySettings
from mailer.domain.states import DeliveryStatus, Outcome, retry_delay
from mailer.domain.status import Fault, Reason
from mailer.engine.breaker import Breaker, sender_pause_reason
from mailer.smtp.transport import SendResult
from mailer.store.queue import Claimed, Decision


def decide(res: SendResult, row: Claimed, now: datetime, retry: RetrySettings) -> Decision:
    """What ``res`` does to ``row`` (the table in the module docstring); ``now`` starts
    the give-up clock of a first attempt and dates a retry."""
    first = row.first_attempt_at or now
    label = res.reason.value if res.reason else None
    # A refusal of our sender says so in its event, whatever becomes of the row, so the
    # report counts it after the row was sent (mailer.store.ledger.report.sender_side).
    detail = f"{label}: {res.reply}" if res.fault is Fault.SENDER and label else None

    def row_is(status: DeliveryStatus, reason: str | None, next_at: datetime | None = None) -> Decision:
        return Decision(row.id, status, res.code, res.reply, reason, next_at, first, status.value, detail=detail)

    if res.outcome is Outcome.SENT:
        return row_is(DeliveryStatus.SENT, None)
    if res.outcome is Outcome.UNKNOWN:
        return row_is(DeliveryStatus.UNKNOWN, "connection lost after the message data")
    if res.outcome is Outcome.FAILED:
        if res.fault is Fault.SENDER:
            # Not the recipient's doing and not an attempt: back to the queue as it was.
            return Decision(
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
    if now >= first + timedelta(seconds=retry.give_up_after):
        return row_is(DeliveryStatus.FAILED, "gave up retrying")
    delay = retry_delay(row.attempts + 1, retry.schedule)
    return row_is(DeliveryStatus.DEFERRED, label or "temporary failure", now + timedelta(seconds=delay))


def render_failed(row: Claimed, error: str, now: datetime) -> Decision:
    """The row whose message could not be rendered (``error`` says why) fails."""
    return Decision(
        row.id, DeliveryStatus.FAILED, None, error, "render_error", None, row.first_attempt_at or now, "failed"
    )


def judge(breaker: Breaker, res: SendResult, row: Claimed, *, bounce_domain: str) -> str | None:
    """Count ``res`` in the release's breaker; the reason the release must pause now (our
    sender refused for good, or the breaker tripped), else None."""
    tripped = breaker.add(res, retry=row.attempts > 0)
    return sender_pause_reason(res, breaker.release_id, bounce_domain) or tripped


@dataclass
class Recording:
    """A group of decided results of one release, ready for one recording transaction."""

    release_id: int
    decisions: list[Decision] = field(default_factory=list)
    #: hard bounces among them: delivery id → (address, the reply), suppressed when
    #: ``bounces.suppress_hard`` and the row is still this worker's
    hard_bounces: dict[int, tuple[str, str]] = field(default_factory=dict)

    def add(self, row: Claimed, res: SendResult | str, now: datetime, retry: RetrySettings) -> Decision:
        """Decide ``res`` (a render error as text) for ``row`` and keep it."""
        if isinstance(res, str):
            decision = render_failed(row, res, now)
        else:
            decision = decide(res, row, now, retry)
            if res.hard and decision.status is DeliveryStatus.FAILED:
                self.hard_bounces[row.id] = (row.email, res.reply)
        self.decisions.append(decision)
        return decision

    def __len__(self) -> int:
        return len(self.decisions)
