"""Why an approved release waits for a person instead of starting, and the confirmation
that lets it go.

Two gates are checked by the engine just before it starts an approved release
(:func:`start_hold`), in this order:

1. **Late.** A release that has not started by its ``not_after`` is not sent. Its
   ``not_after`` is its own (front matter, ``releases schedule --not-after``), else
   ``sender.not_after_hours`` after its send time, or after its approval when that came
   later (a release approved after its send time was approved knowingly late); a
   release without a send time goes when approved and has no default limit. A press
   release three days late is usually wrong to send: a person decides.
2. **Already started** (the send fence, :mod:`mailer.releases.fence`): this database says the
   release was never started, but this machine's fence says this database started it
   with this content, or recorded send results for it beyond what the database holds.
   The database is then most likely a restored copy, and sending would mail everyone a
   second time.

A held release stays ``approved`` with a ``hold_reason`` that the CLI and the staff page
show; the scheduler skips it. ``mailer releases confirm-late ID`` (and, for the second
gate, ``--resend-after-restore``) is the person's decision
(:func:`mailer.releases.workflow.confirm_start`): it is recorded in the release's history
and the release starts at the next tick. A new approval or a new send
time clears the hold and the confirmations (the decision was about the old ones).

**A restored copy taken mid-send.** Before each batch of a ``sending`` release is
claimed, the engine compares the release's send ledger in the database with the highest
value the fence holds for it (:func:`ledger_hold`). When the database is behind, rows it
believes queued may already have been sent: nothing is claimed, and the release is
**paused** (:func:`mailer.releases.workflow.hold_sending`) with the reason in both
``pause_reason`` and ``hold_reason`` (FENCE_HOLD prefix), so it shows as paused, and
``mailer releases resume`` refuses it (a resume would only be paused again). The
person's decision is the same command as above:
``mailer releases confirm-late ID --resend-after-restore`` records it, gives the release
a new ledger key (the fence's lines of the history it chose to ignore no longer match)
and resumes it: the rows this database believes unsent go out at the next tick (those
the relay already took get a second copy — that is what the person confirmed). To send
nothing more, cancel the release instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.states import ReleaseStatus
from mailer.releases import history
from mailer.releases.fence import NO_LEDGER_KEY, LedgerMarks, SendFence
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.tables import Release

__all__ = [
    "FENCE_HOLD",
    "LATE_HOLD",
    "clear",
    "effective_not_after",
    "hold",
    "ledger_hold",
    "record_start",
    "start_hold",
]

#: How each kind of hold reason starts (the confirm command tells them apart).
LATE_HOLD = "late: "
FENCE_HOLD = "already started: "


def effective_not_after(session: Session, release: Release, settings: Settings) -> datetime | None:
    """The latest moment ``release`` may start without a person confirming, or None (no limit)."""
    if release.not_after is not None:
        return release.not_after
    hours = settings.sender.not_after_hours
    if hours <= 0:
        return None
    if release.send_at is None:
        return None  # "as soon as approved": no send time to be late for
    approval = review_store.latest_approval(session, release.id)
    start = max(release.send_at, approval.approved_at) if approval is not None else release.send_at
    return start + timedelta(hours=hours)


def start_hold(
    session: Session, release: Release, *, content_hash: str, now: datetime, settings: Settings, fence: SendFence
) -> str | None:
    """Why the approved ``release`` must not start now (one line naming the command
    that lets it go), or None. Reads the fence; StoreError when it cannot."""
    limit = effective_not_after(session, release, settings)
    if limit is not None and now > limit and release.late_confirmed_at is None:
        return (
            f"{LATE_HOLD}not started by {limit:%Y-%m-%d %H:%M} UTC (its not_after); nothing was sent. "
            f"To send it now: `mailer releases confirm-late {release.id}`; or cancel it"
        )
    database_id = release_store.database_identity(session)
    entry = fence.started(database_id, release.id, content_hash)
    if entry is not None and release.resend_confirmed_at is None:
        return (
            f"{FENCE_HOLD}the send fence ({fence.path}) says this database started release {release.id} "
            f"with this content at {entry.started_at} ({entry.worker}), yet the database shows nothing sent: "
            "it may be a restored copy. Nothing was sent. Check the relay's logs; to send it again anyway: "
            f"`mailer releases confirm-late {release.id} --resend-after-restore`"
        )
    if release.resend_confirmed_at is None:
        return ledger_hold(session, release.id, fence.ledger(), fence=fence)
    return None


def ledger_hold(session: Session, release_id: int, marks: LedgerMarks, *, fence: SendFence) -> str | None:
    """Why the release must not send now because the database's send ledger is behind the
    fence's (``marks``, read from ``fence`` *before* this call, so that the database's
    value read here is at least as new as every committed value the fence was seen to
    hold), or None."""
    key, sequence = release_store.ledger_state(session, release_id)
    database_id = release_store.database_identity(session)
    highest = marks.get((database_id, release_id, key or NO_LEDGER_KEY), 0)
    if highest <= sequence:
        return None
    return (
        f"{FENCE_HOLD}the send fence ({fence.path}) says this database recorded send results of release "
        f"{release_id} up to ledger {highest}, but the database is at {sequence}: it may be a restored copy, "
        "and rows it shows as unsent may have been sent. Nothing more was sent. Check the relay's logs; "
        "to send the rows this database shows as unsent anyway: "
        f"`mailer releases confirm-late {release_id} --resend-after-restore`; or cancel it"
    )


def hold(session: Session, release: Release, reason: str, *, now: datetime) -> bool:
    """Writes: ``release`` (approved) waits for a person, for ``reason``; recorded in its
    history. False when it is no longer approved or already held (someone else acted)."""
    if not release_store.set_hold(session, release.id, reason, now=now):
        return False
    history.record(
        session,
        release.id,
        from_status=ReleaseStatus.APPROVED.value,
        to_status=ReleaseStatus.APPROVED.value,
        actor="mailer",
        note=f"held: {reason}",
        now=now,
    )
    return True


def record_start(
    session: Session, release: Release, *, content_hash: str, fence: SendFence, now: datetime, worker: str
) -> None:
    """Writes the fence (outside the database) for a release about to start; call it in
    the transaction that starts the release, so a fence that cannot be written (StoreError)
    leaves the release approved and unsent."""
    fence.record(release_store.database_identity(session), release.id, content_hash, at=now, worker=worker)


def clear(release: Release) -> None:
    """Forget a hold and the confirmations (a new approval or send time: a new decision)."""
    release.hold_reason = None
    release.late_confirmed_at = None
    release.resend_confirmed_at = None
