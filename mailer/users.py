"""Staff users: accounts, passwords (argon2 via pwdlib), API tokens, and what each role may do.

Roles (``mailer.domain.Role``):

    admin      everything
    publicist  read, preview, submit, schedule, send proofs, cancel their own drafts
    approver   read, preview, approve
    viewer     read, preview

:func:`permits` is the one place that decides whether a user may take an action on a
release; the web pages ask it both to show buttons and to refuse requests. The state
machine (``mailer.domain``) still decides whether the move is legal at all.

API tokens are random (256 bits) and shown once; only their SHA-256 is stored, so a
leaked database does not leak usable tokens (a slow hash buys nothing for random
secrets of this length).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.orm import Session

from mailer.contacts import normalize_email
from mailer.domain import ReleaseStatus, Role
from mailer.errors import InputError, NotFoundError
from mailer.store import users as user_store
from mailer.tables import User

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "Action",
    "StaffUser",
    "add_user",
    "authenticate",
    "disable_user",
    "hash_token",
    "issue_token",
    "list_users",
    "parse_role",
    "permits",
    "user_by_id",
    "user_for_token",
]

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "mlr_"

_HASHER = PasswordHash((Argon2Hasher(),))
# Verified against when the address is unknown, so a miss costs what a hit costs and
# the response time does not tell which addresses have accounts.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class Action(StrEnum):
    """Things a staff user may do; reading (lists, logs, previews, exports) is ``view``."""

    VIEW = "view"
    SUBMIT = "submit"
    APPROVE = "approve"
    SCHEDULE = "schedule"
    PROOF = "proof"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"


_ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.PUBLICIST: frozenset({Action.VIEW, Action.SUBMIT, Action.SCHEDULE, Action.PROOF, Action.CANCEL}),
    Role.APPROVER: frozenset({Action.VIEW, Action.APPROVE}),
    Role.VIEWER: frozenset({Action.VIEW}),
}


@dataclass(frozen=True)
class StaffUser:
    """A signed-in (or token-authenticated) user, detached from the database session."""

    id: int
    email: str
    name: str | None
    role: Role

    @property
    def label(self) -> str:
        """What the pages show: the name, else the address."""
        return self.name or self.email


def _staff(user: User) -> StaffUser:
    return StaffUser(user.id, user.email, user.name, Role(user.role))


def parse_role(value: str) -> Role:
    """``value`` as a Role; InputError naming the choices otherwise."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InputError(f"--role: {value!r} is not one of: {choices}") from None


def permits(user: StaffUser, action: Action, *, author: str | None = None, status: str | None = None) -> bool:
    """True when ``user``'s role allows ``action`` (on a release by ``author`` in ``status``).

    A publicist may cancel only a draft they wrote; every other rule is by role alone.
    """
    if action not in _ROLE_ACTIONS[user.role]:
        return False
    if user.role is Role.PUBLICIST and action is Action.CANCEL:
        return author is not None and author.casefold() == user.email.casefold() and status == ReleaseStatus.DRAFT.value
    return True


def add_user(
    session: Session, email: str, *, role: Role, name: str | None = None, password: str | None, now: datetime
) -> StaffUser:
    """Writes: a new active user. ``password`` None makes an API-only account (no login).

    Raises InputError for a bad address, a short password, or an address already taken.
    """
    address = normalize_email(email)
    if user_store.find_user(session, address) is not None:
        raise InputError(f"user {address} already exists")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    clean_name = name.strip() if name and name.strip() else None
    if clean_name is not None and len(clean_name) > 200:
        raise InputError("--name: at most 200 characters")
    hashed = _HASHER.hash(password) if password is not None else None
    user = user_store.insert_user(
        session, email=address, name=clean_name, role=role.value, password_hash=hashed, now=now
    )
    return _staff(user)


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


def list_users(session: Session) -> list[UserInfo]:
    """Every user, by address."""
    return [
        UserInfo(
            u.email, u.name, u.role, u.active, u.password_hash is not None, u.api_token_hash is not None, u.created_at
        )
        for u in user_store.all_users(session)
    ]


def _require_user(session: Session, email: str) -> User:
    address = normalize_email(email)
    user = user_store.find_user(session, address)
    if user is None:
        raise NotFoundError(f"no user {address} (see `mailer users list`)")
    return user


def hash_token(token: str) -> str:
    """SHA-256 hex of an API token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(session: Session, email: str) -> str:
    """Writes: a new API token for an active user, replacing any earlier one; returns it.

    The token is returned once and never stored. Raises NotFoundError for an unknown
    user and InputError for a disabled one.
    """
    user = _require_user(session, email)
    if not user.active:
        raise InputError(f"user {user.email} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user_store.set_token_hash(session, user.id, hash_token(token))
    return token


def disable_user(session: Session, email: str) -> None:
    """Writes: the user can no longer sign in or use their token (existing sessions end
    at their next request). Raises NotFoundError for an unknown user."""
    user = _require_user(session, email)
    user_store.deactivate_user(session, user.id)


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active user with this address and password, else None (the same work is done
    for unknown addresses). Writes a rehash when the stored hash uses old parameters."""
    try:
        address = normalize_email(email)
    except InputError:
        address = None
    user = user_store.find_user(session, address) if address is not None else None
    if user is None or user.password_hash is None or not user.active:
        _HASHER.verify(password, _DUMMY_HASH)
        return None
    valid, updated = _HASHER.verify_and_update(password, user.password_hash)
    if not valid:
        return None
    if updated is not None:
        user_store.set_password_hash(session, user.id, updated)
    return _staff(user)


def user_by_id(session: Session, user_id: int) -> StaffUser | None:
    """The active user with this id (a session's owner), else None."""
    user = user_store.get_user_by_id(session, user_id)
    return _staff(user) if user is not None and user.active else None


def user_for_token(session: Session, token: str) -> StaffUser | None:
    """The active user owning this API token, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    user = user_store.user_by_token_hash(session, hash_token(token))
    return _staff(user) if user is not None and user.active else None
