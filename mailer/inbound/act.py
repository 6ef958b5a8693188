"""What a classified reply does, in the transaction that records it, and how staff undo it.

* out of office → the contact is **held** (not suppressed) until the return date (midnight
  UTC of that day; ``replies.default_hold_days`` when no date is given or it has passed,
  at most ``replies.max_hold_days``): releases planned or claimed meanwhile record the
  delivery ``held`` with the reason (:mod:`mailer.store.contact_holds`).
* left the outlet → the old address is suppressed for every client (reason ``left``) and
  a research item shows the new outlet or address to confirm as a new contact.
* not my beat → a research item proposes a topic suppression (the release's topics,
  else the contact's beats); nothing is suppressed until staff confirm.
* remove me → suppressed for the release's client, exactly as one-click unsubscribe does
  (:func:`mailer.audience.unsubscribes.unsubscribe`), the source naming the reply.
* human and other automatic mail → nothing.

:func:`undo` reverses any of these (a lifted hold puts the contact's ``held`` rows of
releases still sending back in the queue).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy.orm import Session

from mailer.audience import suppressions, unsubscribes
from mailer.audience.unsubscribes import UnsubscribeChoice
from mailer.config import ReplySettings
from mailer.domain.errors import NotFoundError, WorkflowError
from mailer.domain.replies import ReplyAction, ReplyKind, ResearchKind
from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason
from mailer.inbound.classify import Reading
from mailer.store import contact_holds
from mailer.store import releases as release_store
from mailer.store import replies as reply_store
from mailer.store import research as research_store
from mailer.store.replies import ReplyContext


def hold_until(reading: Reading, settings: ReplySettings, now: datetime) -> tuple[datetime, bool]:
    """When an out-of-office hold ends, and whether the reply gave that date."""
    longest = now + timedelta(days=settings.max_hold_days)
    if reading.return_date is not None:
        until = datetime.combine(reading.return_date, time(0), tzinfo=UTC)
        if until > now:
            return min(until, longest), True
    return now + timedelta(days=settings.default_hold_days), False


def act(
    session: Session,
    reply_id: int,
    ctx: ReplyContext,
    reading: Reading,
    *,
    settings: ReplySettings,
    now: datetime,
) -> tuple[ReplyAction, str | None]:
    """Writes: carry out what ``reading`` asks for the delivery ``ctx``; returns the
    action and a line saying what was done (see the module docstring)."""
    source = f"reply #{reply_id}"
    if reading.kind is ReplyKind.OUT_OF_OFFICE:
        until, given = hold_until(reading, settings, now)
        why = "return date from the reply" if given else "no return date given"
        reason = f"out of office until {until:%Y-%m-%d} ({source})"
        contact_holds.add_hold(
            session, contact_id=ctx.contact_id, until=until, reason=reason, reply_id=reply_id, now=now
        )
        return ReplyAction.HELD, f"held until {until:%Y-%m-%d} ({why})"
    if reading.kind is ReplyKind.LEFT_OUTLET:
        if ctx.email is not None:
            suppressions.suppress(
                session,
                ctx.email,
                reason=SuppressionReason.LEFT,
                source=source,
                now=now,
                scope=GLOBAL_SCOPE,
                note=reading.evidence[:200] or None,
            )
        research_store.add_item(
            session,
            kind=ResearchKind.NEW_ADDRESS,
            reply_id=reply_id,
            contact_id=ctx.contact_id,
            old_email=ctx.email,
            new_email=reading.new_email,
            new_outlet=reading.new_outlet,
            note=reading.evidence or None,
            now=now,
        )
        found = ", ".join(x for x in (reading.new_outlet, reading.new_email) if x) or "no new address given"
        return ReplyAction.SUPPRESSED_LEFT, f"old address suppressed (left); research queue: {found}"
    if reading.kind is ReplyKind.WRONG_BEAT:
        topics = list(ctx.topics) or research_store.contact_beats(session, ctx.contact_id)
        research_store.add_item(
            session,
            kind=ResearchKind.TOPIC,
            reply_id=reply_id,
            contact_id=ctx.contact_id,
            old_email=ctx.email,
            topics=",".join(topics) or None,
            note=reading.evidence or None,
            now=now,
        )
        shown = ", ".join(topics) or "no topic known: choose one"
        return ReplyAction.TOPIC_PROPOSED, f"topic suppression proposed: {shown}"
    if reading.kind is ReplyKind.UNSUBSCRIBE:
        done = unsubscribes.unsubscribe(session, ctx.delivery_id, UnsubscribeChoice.CLIENT, source=source, now=now)
        scope = done.scope if done is not None else ctx.client_slug
        return ReplyAction.UNSUBSCRIBED, f"suppressed for {scope} (as one-click unsubscribe)"
    return ReplyAction.NONE, None


def undo(session: Session, reply_id: int, *, actor: str, now: datetime) -> str:
    """Writes: reverse what reply ``reply_id`` did; returns a line saying what.

    Raises NotFoundError for an unknown reply, WorkflowError when it did nothing or was
    undone before."""
    reply = reply_store.get_reply(session, reply_id)
    if reply is None:
        raise NotFoundError(f"no reply {reply_id}")
    action = ReplyAction(reply.action)
    if action is ReplyAction.NONE:
        raise WorkflowError(f"reply {reply_id} did nothing to undo")
    if not reply_store.mark_undone(session, reply_id, actor=actor, now=now):
        raise WorkflowError(f"reply {reply_id} was undone before")
    why = f"undo of reply #{reply_id}"
    email = research_store.contact_email(session, reply.contact_id)
    if action is ReplyAction.HELD:
        contacts = contact_holds.lift_holds_of_reply(session, reply_id, now=now)
        requeued = contact_holds.requeue_held(session, contacts, now=now)
        return f"hold lifted; {requeued} held deliveries queued again"
    if action is ReplyAction.SUPPRESSED_LEFT:
        research_store.dismiss_items_of_reply(session, reply_id, actor=actor, now=now)
        return _lift(session, email, GLOBAL_SCOPE, why, actor, now) + "; research item dismissed"
    if action is ReplyAction.UNSUBSCRIBED:
        scope = _client_of(session, reply.release_id)
        return _lift(session, email, scope, why, actor, now) if scope else "no client to lift the suppression for"
    dismissed = research_store.dismiss_items_of_reply(session, reply_id, actor=actor, now=now)
    return f"proposal dismissed ({dismissed} open item{'s' if dismissed != 1 else ''})"


def _lift(session: Session, email: str | None, scope: str, why: str, actor: str, now: datetime) -> str:
    if email is None:
        return "the address was erased: nothing to lift"
    try:
        suppressions.lift(session, email, scope=scope, reason=why, actor=actor, now=now)
    except NotFoundError:
        return f"{email} was no longer suppressed in {scope}"
    return f"suppression of {email} in {scope} lifted"


def _client_of(session: Session, release_id: int | None) -> str | None:
    if release_id is None:
        return None
    try:
        release = release_store.get_release(session, release_id)
    except NotFoundError:
        return None
    return release_store.get_client_by_id(session, release.client_id).slug
