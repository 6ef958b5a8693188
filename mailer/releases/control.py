"""Staff controls over a release that is being sent: pause, resume, cancel, retry.

``resume`` is only for a paused release. The state machine also allows approved →
sending (the engine starting a release, after its checks) and sent/partial → sending
(``retry`` re-queueing rows): neither may happen through ``resume``, which would
otherwise start an approved release without planning it (it then "finished" with no
delivery) or reopen a finished one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.releases import workflow
from mailer.releases.holds import FENCE_HOLD
from mailer.store import deliveries as q
from mailer.store.tables import Release

#: ``queued``: rows a notice about our sender put back after the release finished.
RETRYABLE = (DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED, DeliveryStatus.DEFERRED, DeliveryStatus.QUEUED)


def _move(session: Session, release_id: int, dst: ReleaseStatus, actor: str, now: datetime, note: str | None) -> str:
    return workflow.move(session, release_id, dst, actor=actor, now=now, note=note).value


def pause(session: Session, release_id: int, *, actor: str, now: datetime, reason: str | None = None) -> None:
    """Writes: stop claiming new messages; messages in flight finish."""
    _move(session, release_id, ReleaseStatus.PAUSED, actor, now, reason or f"paused by {actor}")


def resume(session: Session, release_id: int, *, actor: str, now: datetime) -> None:
    """Writes: a paused release goes on sending. WorkflowError for any other state."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id} (see `mailer releases list`)")
    status = ReleaseStatus(release.status)
    if status is not ReleaseStatus.PAUSED:
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
    if (release.hold_reason or "").startswith(FENCE_HOLD):
        raise WorkflowError(f"release {release_id} waits for a person: {release.hold_reason}")
    _move(session, release_id, ReleaseStatus.SENDING, actor, now, None)


def cancel_sending(session: Session, release_id: int, *, actor: str, now: datetime) -> int:
    """Writes: cancel a sending or paused release; its queued and deferred rows become
    ``cancelled`` (messages already in flight finish). Returns rows cancelled."""
    _move(session, release_id, ReleaseStatus.CANCELLED, actor, now, None)
    return q.cancel_pending(session, release_id, now)


def retry(session: Session, release_id: int, statuses: Sequence[DeliveryStatus], *, actor: str, now: datetime) -> int:
    """Writes: re-queue the release's rows in ``statuses`` (same Message-ID; suppressions
    are checked again at claim time) and set the release sending. Returns rows re-queued."""
    bad = [s for s in statuses if s not in RETRYABLE]
    if bad or not statuses:
        raise InputError("retry takes --status unknown, failed, deferred or queued")
    release = session.get(Release, release_id)
    if release is None:
        raise NotFoundError(f"no release {release_id} (see `mailer releases list`)")
    count = q.requeue(session, release_id, statuses, now)
    if count and release.status != ReleaseStatus.SENDING.value:
        _move(session, release_id, ReleaseStatus.SENDING, actor, now, f"retry {count} rows")
    return count
