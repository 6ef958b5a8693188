"""What reviewers said of a release: approvals (each bound to the content it saw) and
comments (a note, or a request for changes). Callers own the transaction; functions that
change data say so ("Writes:")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.store.tables import Approval, ReleaseComment


def add_approval(
    session: Session,
    release_id: int,
    *,
    approver: str,
    content_hash: str,
    now: datetime,
    send_at: datetime | None = None,
    render_digest: str | None = None,
    snapshot: str | None = None,
) -> Approval:
    """Writes: an approval bound to ``content_hash`` (and the send time, render digest and
    release file it saw)."""
    approval = Approval(
        release_id=release_id,
        approver=approver,
        content_hash=content_hash,
        approved_at=now,
        send_at=send_at,
        render_digest=render_digest,
        snapshot=snapshot,
    )
    session.add(approval)
    session.flush()
    return approval


def release_approvals(session: Session, release_id: int) -> list[Approval]:
    """Every approval of the release, oldest first."""
    return list(session.scalars(select(Approval).where(Approval.release_id == release_id).order_by(Approval.id)))


def latest_approval(session: Session, release_id: int) -> Approval | None:
    """The newest approval of the release, or None."""
    return session.scalar(
        select(Approval).where(Approval.release_id == release_id).order_by(Approval.id.desc()).limit(1)
    )


def add_comment(
    session: Session, release_id: int, *, author: str, kind: str, body: str, now: datetime
) -> ReleaseComment:
    """Writes: a comment on the release (``kind`` "comment" or "changes")."""
    comment = ReleaseComment(release_id=release_id, author=author, kind=kind, body=body, at=now)
    session.add(comment)
    session.flush()
    return comment


def release_comments(session: Session, release_id: int) -> list[ReleaseComment]:
    """The release's comments, oldest first."""
    return list(
        session.scalars(
            select(ReleaseComment).where(ReleaseComment.release_id == release_id).order_by(ReleaseComment.id)
        )
    )
