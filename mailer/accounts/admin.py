"""What an admin does to accounts in the web app (issue 21), and what a user sets for
themselves: roles, enabling, one-time password reset links, time zone and notifications.
Adding and disabling users: :mod:`mailer.accounts.users`."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailer.accounts.passwords import hash_password
from mailer.accounts.users import require_user
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import Role
from mailer.domain.when import zone
from mailer.store import user_admin
from mailer.store import users as user_store

__all__ = ["RESET_HOURS", "change_role", "enable_user", "issue_reset", "reset_password", "set_preferences"]

#: How long a reset link works.
RESET_HOURS = 24


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def change_role(session: Session, email: str, role: Role, *, by: str) -> None:
    """Writes: ``email``'s role. WorkflowError when an admin would demote themselves (the
    firm could lose its last admin)."""
    user = require_user(session, email)
    if user.email == by.lower() and role is not Role.ADMIN:
        raise WorkflowError("you cannot take the admin role from yourself; ask another admin")
    user_admin.set_role(session, user.id, role.value)


def enable_user(session: Session, email: str) -> None:
    """Writes: a disabled user may sign in again."""
    user_admin.set_active(session, require_user(session, email).id)


def issue_reset(session: Session, email: str, *, now: datetime) -> str:
    """Writes: a one-time reset link's token for ``email`` (returned once; only its hash is
    kept), working :data:`RESET_HOURS` hours. NotFoundError for an unknown user."""
    user = require_user(session, email)
    token = secrets.token_urlsafe(32)
    user_admin.add_reset(session, user.id, _hash(token), now=now, expires_at=now + timedelta(hours=RESET_HOURS))
    return token


def reset_password(session: Session, token: str, password: str, *, now: datetime) -> str:
    """Writes: the new password of the link's user, the link used up, every session of
    theirs ended; returns their address. InputError for an unknown, used or expired
    link, or a short password."""
    reset = user_admin.reset_by_hash(session, _hash(token)) if token else None
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        raise InputError("this reset link is unknown, used or expired: ask an admin for a new one")
    user = user_store.get_user_by_id(session, reset.user_id)
    if user is None or not user.active:
        raise InputError("this reset link is unknown, used or expired: ask an admin for a new one")
    hashed = hash_password(password)
    if not user_admin.use_reset(session, reset.id, now):
        raise InputError("this reset link is unknown, used or expired: ask an admin for a new one")
    user_store.set_password_hash(session, user.id, hashed)
    user_store.revoke_user_web_sessions(session, user.id, now)
    return user.email


def set_preferences(session: Session, user_id: int, *, time_zone: str, notify: bool) -> None:
    """Writes: the user's own time zone (empty: the firm's) and notification choice.
    InputError for an unknown zone."""
    chosen = zone(time_zone, "time zone").key if time_zone.strip() else None
    user_admin.set_preferences(session, user_id, time_zone=chosen, notify=notify)
