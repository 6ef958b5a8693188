"""The one writer of a release's status and history.

Every change of ``releases.status`` in mailer goes through :func:`move` (or
:func:`try_move` for the engine, which races other workers and simply loses): it checks
the move against the transition table (:mod:`mailer.domain.states`), changes the status
with a guarded ``UPDATE … WHERE status = :from`` and appends the release event with who
moved it and why, in the caller's transaction. Nobody else assigns ``Release.status``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.domain.errors import NotFoundError, WorkflowError
from mailer.domain.states import ReleaseStatus, require_release_move
from mailer.store import releases as release_store
from mailer.store.tables import Release

__all__ = ["move", "try_move"]


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
        release_store.add_release_event(
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
    release_store.add_release_event(
        session, release.id, from_status=src.value, to_status=dst.value, actor=actor, note=note, now=now
    )
    return True
