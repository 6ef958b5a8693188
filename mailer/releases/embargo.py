"""The embargo rules of a release: submit refuses an embargo that lifts before the send
time, and how staff see it (in the zone it was written in, and UTC).

The time logic itself (parsing, per-reader text) is :mod:`mailer.domain.embargo`; who is
left out of an embargoed release is planned by :func:`mailer.store.deliveries.exclude_not_embargo_ok`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.domain.embargo import check_embargo_after_send, embargo_text
from mailer.domain.errors import WorkflowError
from mailer.releases.plan import release_embargo
from mailer.store import releases as release_store
from mailer.store.tables import Release

__all__ = ["embargo_lifted", "release_embargo_text", "require_embargo_fits"]


def require_embargo_fits(release: Release) -> None:
    """WorkflowError when the release's embargo lifts before its send time."""
    problem = check_embargo_after_send(release.embargo_at, release.send_at)
    if problem is not None:
        raise WorkflowError(f"release {release.id}: {problem}")


def release_embargo_text(session: Session, release_id: int) -> str | None:
    """The release's embargo as staff see it (its own zone and UTC); None without one.
    Raises NotFoundError for an unknown release."""
    embargo = release_embargo(release_store.get_release(session, release_id))
    if embargo is None:
        return None
    return embargo_text(embargo.at, None, embargo.zone).full


def embargo_lifted(release: Release, now: datetime) -> bool:
    """True when the release has no embargo or its embargo has lifted at ``now``."""
    return release.embargo_at is None or release.embargo_at <= now
