"""Users as an admin changes them (role, enabled) and as they set themselves (time zone,
notifications); one-time password reset links. Only hashes of reset tokens are stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.store.tables import PasswordReset, User

__all__ = ["add_reset", "reset_by_hash", "set_active", "set_preferences", "set_role", "use_reset"]


def set_role(session: Session, user_id: int, role: str) -> None:
    """Writes: the user's role."""
    session.execute(update(User).where(User.id == user_id).values(role=role))


def set_active(session: Session, user_id: int) -> None:
    """Writes: a disabled user may sign in again (their token stays revoked)."""
    session.execute(update(User).where(User.id == user_id).values(active=True))


def set_preferences(session: Session, user_id: int, *, time_zone: str | None, notify: bool) -> None:
    """Writes: the zone the user sees times in (None: the firm's) and whether they get notifications."""
    session.execute(update(User).where(User.id == user_id).values(time_zone=time_zone, notify=notify))


def add_reset(session: Session, user_id: int, token_hash: str, *, now: datetime, expires_at: datetime) -> None:
    """Writes: a one-time reset link (its token's hash)."""
    session.add(PasswordReset(user_id=user_id, token_hash=token_hash, created_at=now, expires_at=expires_at))
    session.flush()


def reset_by_hash(session: Session, token_hash: str) -> PasswordReset | None:
    """The reset link with this token hash, used or not."""
    return session.scalar(select(PasswordReset).where(PasswordReset.token_hash == token_hash))


def use_reset(session: Session, reset_id: int, now: datetime) -> bool:
    """Writes: mark the link used; False when it already was (two tabs raced)."""
    result = session.execute(
        update(PasswordReset).where(PasswordReset.id == reset_id, PasswordReset.used_at.is_(None)).values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
