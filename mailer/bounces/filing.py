"""Carrying out the bounce policy in the caller's transaction: the delivery event, the
bounced mark, suppressions, the soft-bounce score and its warn/disable flow, the pause
of a release whose sender is refused, and the mailto unsubscribe. What to do is decided
by :func:`mailer.bounces.policy.decide`; this module only writes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailer.bounces.policy import MAX_DETAIL, BounceOutcome, Decision, dedupe_key, reply_code
from mailer.bounces.report import Kind, RecipientStatus
from mailer.config import BounceSettings
from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason
from mailer.releases import workflow
from mailer.store import bounces as bounce_store
from mailer.store import suppressions as suppression_store
from mailer.store import webhooks
from mailer.store.bounces import BounceTarget

log = logging.getLogger(__name__)


def file_notice(
    session: Session,
    target: BounceTarget,
    recipient: RecipientStatus | None,
    kind: Kind,
    decision: Decision,
    *,
    settings: BounceSettings,
    raw_kept: str | None,
    fingerprint: str,
    now: datetime,
) -> tuple[BounceOutcome, str | None]:
    """Writes: record one notice about one delivery and carry out ``decision``; returns
    the outcome and the address it suppressed, if any (``DUPLICATE`` when this notice
    was recorded before: nothing is done twice)."""
    status = recipient.status if recipient is not None else None
    diagnostic = recipient.diagnostic if recipient is not None else None
    detail = " ".join(p for p in (status, diagnostic) if p)[:MAX_DETAIL] or None
    code = reply_code(status, diagnostic)
    event_detail = detail
    if decision.requeue and recipient is not None:
        # Says whose fault it is, as the engine's requeued events do (the report counts it).
        event_detail = f"{recipient.reason.value}: {detail or ''}"[:MAX_DETAIL]
    if not bounce_store.record_delivery_event(
        session,
        delivery_id=target.delivery_id,
        contact_id=target.contact_id,
        kind=decision.event,
        code=code,
        detail=event_detail,
        dedupe_key=dedupe_key(target.delivery_id, decision.event, status, fingerprint),
        raw=raw_kept,
        at=now,
    ):
        return BounceOutcome.DUPLICATE, None

    if decision.event in ("bounced", "complained"):
        data = {"delivery_id": target.delivery_id, "release_id": target.release_id, "email": target.email}
        webhooks.emit(session, f"delivery.{decision.event}", {**data, "code": code, "detail": detail}, now=now)
    source = f"{'complaint' if kind is Kind.COMPLAINT else 'bounce'} {fingerprint}"
    if recipient is not None and decision.requeue:
        bounce_store.requeue_refused(
            session, target.delivery_id, reason=recipient.reason.value, code=code, reply=detail, now=now
        )
    if recipient is not None and decision.mark_bounced:
        bounce_store.mark_delivery_bounced(
            session, target.delivery_id, reason=recipient.reason.value, code=code, reply=detail, now=now
        )
    if recipient is not None and decision.pause_release:
        pause_release(session, target, detail or recipient.reason.value, now)
    if decision.suppress is not None:
        return decision.outcome, suppress(session, target, decision.suppress, source, now)
    if decision.score:
        return decision.outcome, score(session, target, source, now, settings=settings)
    return decision.outcome, None


def score(
    session: Session, target: BounceTarget, source: str, now: datetime, *, settings: BounceSettings
) -> str | None:
    """Writes: count a soft bounce; run the warn/disable flow past the threshold. Returns
    the address when it is suppressed now."""
    state = bounce_store.bump_soft_bounce_score(
        session, target.contact_id, now=now, reset_days=settings.soft_reset_days
    )
    if state.score < settings.soft_threshold:
        return None
    interval = timedelta(days=settings.soft_warning_days)
    due = state.warned_at is None or now - state.warned_at >= interval
    if state.warnings < settings.soft_warnings:
        if due and bounce_store.record_soft_warning(session, target.contact_id, warnings=state.warnings, now=now):
            number = state.warnings + 1
            bounce_store.record_delivery_event(
                session,
                delivery_id=target.delivery_id,
                contact_id=target.contact_id,
                kind="bounce_warning",
                code=None,
                detail=(
                    f"soft-bounce warning {number} of {settings.soft_warnings}: {state.score} soft bounces; "
                    f"suppressed if it still bounces {settings.soft_warning_days} days after the last warning"
                ),
                dedupe_key=dedupe_key(target.delivery_id, "bounce_warning", str(number), str(target.contact_id)),
                raw=None,
                at=now,
            )
        return None
    if not due:
        return None
    return suppress(session, target, SuppressionReason.SOFT_BOUNCE, source, now)


def pause_release(session: Session, target: BounceTarget, detail: str, now: datetime) -> None:
    """Writes: pause the release of ``target`` if it is still sending (a guarded move, so
    two notices at once pause it once)."""
    paused = workflow.try_pause(
        session,
        target.release_id,
        actor="bounce processor",
        now=now,
        note=(
            f"a receiving server refuses our sender: {detail[:300]}; check the bounce domain's DNS "
            "and the sending setup (SPF, DKIM, IP reputation), then resume"
        ),
    )
    if paused:
        log.warning("paused release %s: a receiving server refuses our sender", target.release_id)


def unsubscribe(
    session: Session, target: BounceTarget, *, raw_kept: str | None, now: datetime
) -> tuple[BounceOutcome, str | None]:
    """Writes: a mailto unsubscribe for ``target``'s delivery: an ``unsubscribed`` event
    and a suppression for the release's client. Returns the outcome and the address
    suppressed (``DUPLICATE`` when this delivery was unsubscribed by mail before)."""
    recorded = bounce_store.record_delivery_event(
        session,
        delivery_id=target.delivery_id,
        contact_id=target.contact_id,
        kind="unsubscribed",
        code=None,
        detail="mailto unsubscribe",
        # One mailto unsubscribe per delivery counts; the journalist's client may
        # send it twice.
        dedupe_key=dedupe_key(target.delivery_id, "unsubscribed", None, "mailto"),
        raw=raw_kept,
        at=now,
    )
    if not recorded:
        return BounceOutcome.DUPLICATE, None
    address = suppress(session, target, SuppressionReason.UNSUBSCRIBED, "mailto", now, scope=target.client_slug)
    data = {"delivery_id": target.delivery_id, "release_id": target.release_id, "email": target.email}
    webhooks.emit(session, "contact.unsubscribed", {**data, "scope": target.client_slug, "via": "mailto"}, now=now)
    return BounceOutcome.UNSUBSCRIBED, address


def suppress(
    session: Session,
    target: BounceTarget,
    reason: SuppressionReason,
    source: str,
    now: datetime,
    *,
    scope: str = GLOBAL_SCOPE,
) -> str | None:
    """Writes: suppress ``target``'s address in ``scope``; returns it (None for an erased
    contact, whose hash the erasure already suppressed)."""
    if target.email is None:
        return None
    suppression_store.add_suppression(session, target.email, reason=reason, source=source, now=now, scope=scope)
    return target.email
