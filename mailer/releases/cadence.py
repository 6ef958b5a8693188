"""The cadence cap: a firm-wide limit of messages per journalist over every release and
client (``[cadence] max_per_contact`` within ``window_hours``).

Planning records a contact over the limit as a ``capped`` delivery with the reason
(:func:`mailer.store.deliveries.plan_segment` under :func:`cap_for`); it is never sent.
An approver may lift the cap for one release (:func:`lift_cap`, recorded in its history):
its capped rows go back to the queue. Corrections and withdrawals are never capped
(:func:`mailer.domain.conversations.capped`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailer.config import CadenceSettings
from mailer.domain.conversations import capped
from mailer.domain.errors import WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.releases import workflow
from mailer.store import deliveries as delivery_store
from mailer.store import releases as release_store
from mailer.store.planned import Cap
from mailer.store.tables import Release

__all__ = ["cap_for", "cap_reason", "lift_cap"]


def cap_reason(cadence: CadenceSettings) -> str:
    """The reason a capped row carries, e.g. ``cadence cap: 2 per 24h``."""
    return f"cadence cap: {cadence.max_per_contact} per {cadence.window_hours:g}h"


def cap_for(release: Release, cadence: CadenceSettings, now: datetime) -> Cap | None:
    """The cap ``release`` is planned under at ``now``; None when there is no cap, the
    release is a correction or withdrawal, or an approver lifted it."""
    if cadence.max_per_contact <= 0 or not capped(release.kind) or release.cap_lifted_at is not None:
        return None
    since = now - timedelta(hours=cadence.window_hours)
    return Cap(cadence.max_per_contact, since, cap_reason(cadence))


def lift_cap(session: Session, release_id: int, *, actor: str, now: datetime, note: str | None = None) -> int:
    """Writes: the cadence cap no longer applies to the release (who and when recorded on
    it and in its history); rows already ``capped`` go back to the queue, and a finished
    release goes back to sending for them. Returns the rows queued again. Raises
    NotFoundError, WorkflowError (a cancelled release, or the cap already lifted)."""
    actor = workflow.check_actor(actor)
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if status is ReleaseStatus.CANCELLED:
        raise WorkflowError(f"release {release_id} is cancelled: nothing to lift the cap for")
    if release.cap_lifted_at is not None:
        raise WorkflowError(f"the cadence cap was already lifted for release {release_id} by {release.cap_lifted_by}")
    release.cap_lifted_by = actor
    release.cap_lifted_at = now
    count = delivery_store.release_capped(session, release_id, now)
    said = f"cadence cap lifted by {actor}" + (f": {note}" if note else "") + f"; {count} capped rows queued"
    if count and status in (ReleaseStatus.SENT, ReleaseStatus.PARTIAL):
        workflow.move(session, release_id, ReleaseStatus.SENDING, actor=actor, now=now, note=said, src=status)
    else:
        workflow.move(session, release_id, status, actor=actor, now=now, note=said, src=status)
    return count
