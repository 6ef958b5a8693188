"""The one writer of a release's status and history, and the verbs people use on it.

Every change of ``releases.status`` in mailer goes through :func:`move` (or
:func:`try_move` for the engine, which races other workers and simply loses): it checks
the move against the transition table (:mod:`mailer.domain.states`), changes the status
with a guarded ``UPDATE … WHERE status = :from`` and appends the release event with who
moved it and why, in the caller's transaction. Nobody else assigns ``Release.status``.

The verbs built on it (submission and approval are in :mod:`mailer.releases.approval`,
edits in :mod:`mailer.releases.authoring`): :func:`schedule` (a new send time),
:func:`pause`, :func:`resume`, :func:`cancel` (any cancellable state), :func:`retry`,
:func:`confirm_start` (a person lets a held release go) and :func:`hold_sending` (the
send fence pauses a sending release). What each state allows is
:func:`mailer.domain.states.allowed_actions`.

``resume`` is only for a paused release (it goes on ``planning`` when planning steps are
left, else ``sending``). The state machine also allows approved → planning (the engine
starting a release, after its checks), planning → sending (its last planning step) and
sent/partial → sending
(``retry`` re-queueing rows): neither may happen through ``resume``, which would
otherwise start an approved release without planning it (it then "finished" with no
delivery) or reopen a finished one.

Over 400 lines on purpose: it is the one writer of release status, and every verb that
moves a status stays next to the guarded move it uses.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from mailer.domain.embargo import check_embargo_after_send
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.states import (
    RETRYABLE_DELIVERY,
    DeliveryStatus,
    ReleaseAction,
    ReleaseStatus,
    allowed_actions,
    require_release_move,
)
from mailer.domain.when import require_future
from mailer.message import check_header_value
from mailer.releases import history, holds
from mailer.releases.source import check_not_after
from mailer.store import audit
from mailer.store import deliveries as delivery_store
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.tables import Release

__all__ = [
    "Cancelled",
    "cancel",
    "check_actor",
    "confirm_start",
    "hold_sending",
    "move",
    "pause",
    "resume",
    "retry",
    "running_status",
    "schedule",
    "try_move",
    "try_pause",
]


def check_actor(actor: str) -> str:
    """A user name for the history: non-empty, one line, at most 320 characters."""
    actor = actor.strip()
    if not actor:
        raise InputError("--as: a user name is required (or set MAILER_USER)")
    check_header_value("--as", actor)
    if len(actor) > 320:
        raise InputError("--as: at most 320 characters")
    return actor


def move(
    session: Session,
    release_id: int,
    dst: ReleaseStatus,
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    src: ReleaseStatus | None = None,
    reason: str | None = None,
) -> ReleaseStatus:
    """Writes: move release ``release_id`` to ``dst`` and record the event; returns the
    state it left. ``dst`` equal to the
    current state records the event only (an edit). ``reason`` is the pause reason when
    it differs from the event's ``note``. ``src`` (when given) is the state the caller saw: the move happens only
    from there. Raises NotFoundError (no such release), WorkflowError (an illegal move, or
    the release changed meanwhile)."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id} (see `mailer releases list`)")
    current = ReleaseStatus(release.status)
    if src is not None and current is not src:
        raise WorkflowError(f"release {release_id} is {current.value}, not {src.value}")
    if dst is current:
        # not a move: an event in the release's history (an edit, a hold, a confirmation)
        release.updated_at = now
        history.record(
            session, release_id, from_status=current.value, to_status=dst.value, actor=actor, note=note, now=now
        )
        return current
    require_release_move(current, dst)
    if not _write(session, release, current, dst, actor=actor, now=now, note=note, reason=reason):
        raise WorkflowError(f"release {release_id} changed while being moved to {dst.value}; look again")
    return current


def try_move(
    session: Session,
    release_id: int,
    src: ReleaseStatus,
    dst: ReleaseStatus,
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    reason: str | None = None,
) -> bool:
    """Writes: ``src`` → ``dst`` if the release is (still) in ``src``; False when it is not
    (another process moved it first, or it does not exist). For the engine's own moves
    (start, breaker pause, finish), where losing a race is normal. An illegal move raises
    WorkflowError: that is a bug, not a race."""
    require_release_move(src, dst)
    release = session.get(Release, release_id)
    if release is None or release.status != src.value:
        return False
    return _write(session, release, src, dst, actor=actor, now=now, note=note, reason=reason)


def _write(
    session: Session,
    release: Release,
    src: ReleaseStatus,
    dst: ReleaseStatus,
    *,
    actor: str,
    now: datetime,
    note: str | None,
    reason: str | None = None,
) -> bool:
    won = release_store.move_release_status(
        session, release.id, src=src, dst=dst, now=now, reason=note if reason is None else reason
    )
    if not won:
        return False
    session.refresh(release)
    history.record(session, release.id, from_status=src.value, to_status=dst.value, actor=actor, note=note, now=now)
    return True


# ------------------------------------------------------------------ the verbs


def schedule(
    session: Session,
    release_id: int,
    *,
    at: datetime | None,
    actor: str,
    now: datetime,
    not_after: datetime | None = None,
    send_now: bool = False,
) -> Release:
    """Writes: set ``send_at`` and/or ``not_after`` (recorded as an event that keeps the status).

    Allowed before sending starts (draft, submitted, approved) and while paused; a new
    time clears a late hold (it is a new decision, see :mod:`mailer.releases.holds`).
    ``send_now`` sets the send time to ``now`` (sending at once is explicit: issue 21).
    A time in the past, a naive time, neither time given, or a ``not_after`` not after
    the send time is an InputError; other states, and a send time after the release's
    embargo once it is submitted (a draft's is checked by
    :func:`mailer.releases.approval.submit_release`), raise WorkflowError.

    An approved release whose new send time is earlier than the one its approver saw (an
    approval given without a send time takes any) goes back to ``submitted``: approval
    needed again for the earlier time; the move is recorded and the author told by the
    caller's notifications (:func:`mailer.releases.notify.tell_author`).
    """
    actor = check_actor(actor)
    if send_now:
        if at is not None:
            raise InputError("--now and --at: give one of them")
        at = now
    for name, value in (("--at", at), ("--not-after", not_after)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InputError(f"{name}: give a time zone (e.g. 2026-12-01T09:00:00-05:00)")
    if at is None and not_after is None:
        raise InputError("--at, --now or --not-after: give a time")
    if at is not None and not send_now:
        require_future(at, now, "--at", hint=f"to send at once: `mailer releases schedule {release_id} --now`")
    if not_after is not None:
        require_future(not_after, now, "--not-after")
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if ReleaseAction.SCHEDULE not in allowed_actions(status):
        raise WorkflowError(f"release {release_id} is {status.value}: its send time can no longer change")
    check_not_after(at or release.send_at, not_after or release.not_after, "--not-after" if not_after else "--at")
    if at is not None and status is not ReleaseStatus.DRAFT:
        # The rule submit applies to a draft (issue 16): moved past the embargo, the first
        # copies would arrive with the news already public. After submit nothing else checks.
        problem = check_embargo_after_send(release.embargo_at, at)
        if problem is not None:
            raise WorkflowError(f"release {release_id}: {problem}")
    notes = []
    if at is not None:
        release.send_at = at.astimezone(UTC)
        notes.append("send now" if send_now else f"send_at set to {at.isoformat()}")
    if not_after is not None:
        release.not_after = not_after.astimezone(UTC)
        notes.append(f"not_after set to {not_after.isoformat()}")
    holds.clear(release)
    dst = status
    if status is ReleaseStatus.APPROVED and at is not None:
        approval = review_store.latest_approval(session, release_id)
        approved_at = approval.send_at if approval is not None else None
        if approved_at is not None and at < approved_at:
            dst = ReleaseStatus.SUBMITTED
            notes.append(
                f"earlier than the approved {approved_at:%Y-%m-%d %H:%M} UTC: back to submitted, approval needed again"
            )
    move(session, release_id, dst, actor=actor, now=now, note="; ".join(notes), src=status)
    audit.record(
        session,
        actor=actor,
        action="release.schedule",
        target=f"release {release_id}",
        detail="; ".join(notes),
        now=now,
    )
    return release


def pause(session: Session, release_id: int, *, actor: str, now: datetime, reason: str | None = None) -> None:
    """Writes: stop claiming new messages; messages in flight finish. WorkflowError unless
    the release is sending (pausing a paused release is refused, not recorded again)."""
    status = ReleaseStatus(release_store.get_release(session, release_id).status)
    require_release_move(status, ReleaseStatus.PAUSED)
    note = reason or f"paused by {actor}"
    move(session, release_id, ReleaseStatus.PAUSED, actor=actor, now=now, note=note, src=status)


def resume(session: Session, release_id: int, *, actor: str, now: datetime) -> ReleaseStatus:
    """Writes: a paused release goes on sending (``planning`` while planning steps are
    left); returns the state it is now in. WorkflowError for any other state."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id} (see `mailer releases list`)")
    status = ReleaseStatus(release.status)
    if ReleaseAction.RESUME not in allowed_actions(status):
        hint = {
            ReleaseStatus.APPROVED: (
                f"; it waits: {release.hold_reason}"
                if release.hold_reason
                else "; `mailer run` starts it when its send time comes"
            ),
            ReleaseStatus.SENT: f"; to send failed or unknown rows again: `mailer releases retry {release_id}`",
            ReleaseStatus.PARTIAL: f"; to send failed or unknown rows again: `mailer releases retry {release_id}`",
        }.get(status, "")
        raise WorkflowError(f"release {release_id} is {status.value}, not paused: only a paused release resumes{hint}")
    if (release.hold_reason or "").startswith(holds.FENCE_HOLD):
        raise WorkflowError(f"release {release_id} waits for a person: {release.hold_reason}")
    status = running_status(release)
    move(session, release_id, status, actor=actor, now=now)
    return status


def running_status(release: Release) -> ReleaseStatus:
    """The state a paused ``release`` goes on in: ``planning`` while planning steps are
    left (:mod:`mailer.engine.planner`), else ``sending``."""
    return ReleaseStatus.SENDING if release.plan_cursor is None else ReleaseStatus.PLANNING


def try_pause(
    session: Session, release_id: int, *, actor: str, now: datetime, note: str, reason: str | None = None
) -> bool:
    """Writes: the engine pauses a running release (``sending`` or ``planning``: the
    breaker, a refusal of our sender, the send fence); False when it is neither (someone
    else acted)."""
    return any(
        try_move(session, release_id, src, ReleaseStatus.PAUSED, actor=actor, now=now, note=note, reason=reason)
        for src in (ReleaseStatus.SENDING, ReleaseStatus.PLANNING)
    )


@dataclass(frozen=True)
class Cancelled:
    """What :func:`cancel` did: the state the release left, and how many of its queued or
    deferred deliveries were cancelled (0 unless it was sending or paused)."""

    release: Release
    was: ReleaseStatus
    pending: int

    @property
    def was_sending(self) -> bool:
        return self.was in (ReleaseStatus.PLANNING, ReleaseStatus.SENDING, ReleaseStatus.PAUSED)


def cancel(session: Session, release_id: int, *, actor: str, now: datetime, note: str | None = None) -> Cancelled:
    """Writes: move the release to cancelled, from any state that allows it; a release
    cancelled while sending (or paused) has its queued and deferred rows cancelled at
    once (messages already in flight finish and are recorded). Raises NotFoundError,
    WorkflowError when the state does not allow it, InputError for a bad ``actor``."""
    actor = check_actor(actor)
    release = release_store.get_release(session, release_id, for_update=True)
    was = ReleaseStatus(release.status)
    require_release_move(was, ReleaseStatus.CANCELLED)  # a cancelled release is not cancelled "again"
    move(session, release_id, ReleaseStatus.CANCELLED, actor=actor, now=now, note=note or "cancelled", src=was)
    pending = 0
    if was in (ReleaseStatus.PLANNING, ReleaseStatus.SENDING, ReleaseStatus.PAUSED):
        # A release cancelled while planning is planned no further (the planner plans
        # planning and paused releases only); a step committing meanwhile on PostgreSQL
        # leaves rows that the engine's finish cancels (cancelled_with_pending).
        pending = delivery_store.cancel_pending(session, release_id, now)
    return Cancelled(release, was, pending)


def retry(session: Session, release_id: int, statuses: Sequence[DeliveryStatus], *, actor: str, now: datetime) -> int:
    """Writes: re-queue the release's rows in ``statuses`` (same Message-ID; suppressions
    are checked again at claim time) and set the release sending. Returns rows re-queued."""
    bad = [s for s in statuses if s not in RETRYABLE_DELIVERY]
    if bad or not statuses:
        raise InputError("retry takes --status unknown, failed, deferred or queued")
    release = session.get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id} (see `mailer releases list`)")
    if release.status == ReleaseStatus.PLANNING.value:
        raise WorkflowError(f"release {release_id} is still being planned: retry once it is sending")
    count = delivery_store.requeue(session, release_id, statuses, now)
    if count and release.status != ReleaseStatus.SENDING.value:
        move(session, release_id, ReleaseStatus.SENDING, actor=actor, now=now, note=f"retry {count} rows")
    return count


def confirm_start(
    session: Session, release_id: int, *, actor: str, resend_after_restore: bool, now: datetime
) -> Release:
    """Writes: a person lets an approved release start although it is late (and, with
    ``resend_after_restore``, although the send fence says it was started before), or
    lets a release the fence paused mid-send go on (``resend_after_restore``; it resumes).

    Raises WorkflowError when the release is neither approved nor paused by the fence,
    or when it is held by the fence and ``resend_after_restore`` is not given. Allowed
    before a hold too (a person who knows the engine was down may confirm ahead).
    """
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    held = release.hold_reason or ""
    fence_paused = status is ReleaseStatus.PAUSED and held.startswith(holds.FENCE_HOLD)
    if status is not ReleaseStatus.APPROVED and not fence_paused:
        raise WorkflowError(
            f"release {release_id} is {status.value}: only an approved release waiting to start, "
            "or one the send fence paused, can be confirmed"
        )
    if held.startswith(holds.FENCE_HOLD) and not resend_after_restore:
        raise WorkflowError(
            f"release {release_id} may already have been sent (see `mailer releases show {release_id}`): "
            "to send it again anyway, add --resend-after-restore"
        )
    what = "sending again after a database restore" if resend_after_restore else "a late start"
    to_status = running_status(release) if fence_paused else status
    release.late_confirmed_at = now
    if resend_after_restore:
        release.resend_confirmed_at = now
        # The fence's lines of the history the person chose to ignore no longer match.
        release.ledger_key = secrets.token_hex(8)
    release.hold_reason = None
    release.updated_at = now
    move(
        session,
        release_id,
        to_status,
        actor=actor,
        now=now,
        note=f"confirmed {what}" + (f" (was held: {held})" if held else ""),
        src=status,
    )
    return release


def hold_sending(session: Session, release_id: int, reason: str, *, now: datetime) -> bool:
    """Writes: a running (``sending`` or ``planning``) release is paused to wait for a
    person, for ``reason`` (a fence hold), recorded in its history. False when it is no
    longer running."""
    if not try_pause(
        session,
        release_id,
        actor="mailer (send fence)",
        now=now,
        note=f"held: {reason}",
        reason=reason,
    ):
        return False
    release_store.set_hold_reason(session, release_id, reason)
    return True
