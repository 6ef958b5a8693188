"""Staff users: the signed-in identity (:class:`StaffUser`), adding, listing and
disabling accounts.

Roles and what each may do: :mod:`mailer.accounts.permits`; passwords:
:mod:`mailer.accounts.passwords` and :mod:`mailer.accounts.signin`; browser sessions:
:mod:`mailer.accounts.web_sessions`; API tokens: :mod:`mailer.accounts.api_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.accounts.passwords import hash_password
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import Role
from mailer.store import users as user_store
from mailer.store.tables import User


@dataclass(frozen=True)
class StaffUser:
    """A signed-in (or token-authenticated) user, detached from the database session."""

    id: int
    email: str
    name: str | None
    role: Role
    #: the zone the pages show times in (None: the firm's, ``web.time_zone``)
    time_zone: str | None = None

    @property
    def label(self) -> str:
        """What the pages show: the name, else the address."""
        return self.name or self.email


def staff_user(user: User) -> StaffUser:
    """The detached view of a user row."""
    return StaffUser(user.id, user.email, user.name, Role(user.role), user.time_zone)


def add_user(
    session: Session, email: str, *, role: Role, name: str | None = None, password: str | None, now: datetime
) -> StaffUser:
    """Writes: a new active user. ``password`` None makes an API-only account (no login).

    Raises InputError for a bad address, a short password, or an address already taken.
    """
    address = normalize_email(email)
    if user_store.find_user(session, address) is not None:
        raise InputError(f"user {address} already exists")
    clean_name = name.strip() if name and name.strip() else None
    if clean_name is not None and len(clean_name) > 200:
        raise InputError("--name: at most 200 characters")
    hashed = hash_password(password) if password is not None else None
    user = user_store.insert_user(
        session, email=address, name=clean_name, role=role.value, password_hash=hashed, now=now
    )
    return staff_user(user)


@dataclass(frozen=True)
class UserInfo:
    """One line of ``mailer users list``."""

    email: str
    name: str | None
    role: str
    active: bool
    has_password: bool
    has_token: bool
    created_at: datetime
    token_scope: str | None = None
    token_expires_at: datetime | None = None


def list_users(session: Session) -> list[UserInfo]:
    """Every user, by address."""
    return [
        UserInfo(
            u.email,
            u.name,
            u.role,
            u.active,
            u.password_hash is not None,
            u.api_token_hash is not None,
            u.created_at,
            u.api_token_scope if u.api_token_hash is not None else None,
            u.api_token_expires_at if u.api_token_hash is not None else None,
        )
        for u in user_store.all_users(session)
    ]


def require_user(session: Session, email: str) -> User:
    """The user with this address; NotFoundError naming it otherwise."""
    address = normalize_email(email)
    user = user_store.find_user(session, address)
    if user is None:
        raise NotFoundError(f"no user {address} (see `mailer users list`)")
    return user


def disable_user(session: Session, email: str, *, now: datetime) -> int:
    """Writes: the user can no longer sign in or use their token, and every open session
    ends at once; returns how many sessions were ended. Raises NotFoundError for an
    unknown user."""
    user = require_user(session, email)
    user_store.deactivate_user(session, user.id)
    return user_store.revoke_user_web_sessions(session, user.id, now)


def user_by_id(session: Session, user_id: int) -> StaffUser | None:
    """The active user with this id, else None."""
    user = user_store.get_user_by_id(session, user_id)
    return staff_user(user) if user is not None and user.active else None
