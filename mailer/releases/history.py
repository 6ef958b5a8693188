"""A release's history: the one place that appends to it.

Status changes go through :mod:`mailer.releases.workflow` (which records them here);
events that change no status — created, edited, held, confirmed — are recorded here
directly by the module that acts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.store import releases as release_store
from mailer.store import webhooks

__all__ = ["record"]


def record(
    session: Session,
    release_id: int,
    *,
    from_status: str | None,
    to_status: str,
    actor: str,
    note: str | None,
    now: datetime,
) -> None:
    """Writes: one event in the release's history (append-only); a change of status is
    also queued as the webhook ``release.<to_status>``."""
    release_store.add_release_event(
        session, release_id, from_status=from_status, to_status=to_status, actor=actor, note=note, now=now
    )
    if from_status != to_status:
        data = {"release_id": release_id, "from": from_status, "to": to_status, "actor": actor, "note": note}
        webhooks.emit(session, f"release.{to_status}", data, now=now)
