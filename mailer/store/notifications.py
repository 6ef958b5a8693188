"""Queued notification mail to staff (:mod:`mailer.releases.notify`), and whom to tell."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.store.tables import Notification, User

__all__ = ["add_notification", "mark_failed", "mark_sent", "notifiable", "pending", "users_with_roles"]


def add_notification(
    session: Session, *, to_address: str, kind: str, release_id: int | None, subject: str, body: str, now: datetime
) -> Notification:
    """Writes: one queued notification."""
    row = Notification(
        to_address=to_address,
        kind=kind,
        release_id=release_id,
        subject=subject,
        body=body,
        created_at=now,
        attempts=0,
    )
    session.add(row)
    session.flush()
    return row


def pending(session: Session, *, limit: int = 50, max_attempts: int = 5) -> list[Notification]:
    """Notifications not sent yet (fewer than ``max_attempts`` tries), oldest first."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.sent_at.is_(None), Notification.attempts < max_attempts)
            .order_by(Notification.id)
            .limit(limit)
        )
    )


def mark_sent(session: Session, notification_id: int, now: datetime) -> None:
    """Writes: the notification went out."""
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(sent_at=now, attempts=Notification.attempts + 1, last_error=None)
    )


def mark_failed(session: Session, notification_id: int, error: str) -> None:
    """Writes: one more failed try, and why."""
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(attempts=Notification.attempts + 1, last_error=error[:2000])
    )


def notifiable(session: Session, addresses: Sequence[str]) -> list[str]:
    """Those of ``addresses`` (compared case-insensitively) that are active users who
    did not turn notifications off; names that are no user are left out."""
    wanted = {a.strip().lower() for a in addresses if a and a.strip()}
    if not wanted:
        return []
    rows = session.scalars(select(User.email).where(User.email.in_(wanted), User.active.is_(True), User.notify))
    return sorted(set(rows))


def users_with_roles(session: Session, roles: Sequence[str]) -> list[str]:
    """Addresses of active users with one of ``roles`` who take notifications."""
    rows = session.scalars(select(User.email).where(User.role.in_(list(roles)), User.active.is_(True), User.notify))
    return sorted(set(rows))
