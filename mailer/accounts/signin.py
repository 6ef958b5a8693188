"""Signing in with a password, and changing it.

Password hashing (Argon2, tens of milliseconds of CPU) never runs inside a database
transaction: :func:`login_candidate` reads, :func:`check_password` verifies with no
database at all, and the caller writes (a rehash, a session) in a short transaction of
its own. On SQLite a write transaction holds the one write lock, and a flood of sign-in
attempts must not queue the unsubscribes behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.accounts import passwords
from mailer.accounts.users import StaffUser, require_user, staff_user
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError
from mailer.store import users as user_store


@dataclass(frozen=True)
class LoginCandidate:
    """What a sign-in needs from the database: the active user with a password, if any."""

    user: StaffUser | None
    password_hash: str | None


def login_candidate(session: Session, email: str) -> LoginCandidate:
    """Reads the user who may sign in as ``email`` (active, with a password)."""
    try:
        address = normalize_email(email)
    except InputError:
        return LoginCandidate(None, None)
    user = user_store.find_user(session, address)
    if user is None or user.password_hash is None or not user.active:
        return LoginCandidate(None, None)
    return LoginCandidate(staff_user(user), user.password_hash)


def check_password(candidate: LoginCandidate, password: str) -> tuple[StaffUser | None, str | None]:
    """No database: (the user, else None; a new hash when the stored one uses old
    parameters, else None). An unknown user costs the same work as a known one."""
    if candidate.user is None or candidate.password_hash is None:
        passwords.verify_nothing(password)
        return None, None
    valid, updated = passwords.verify(password, candidate.password_hash)
    return (candidate.user, updated) if valid else (None, None)


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The active user with this address and password, else None (the same work is done
    for unknown addresses). Writes a rehash when the stored hash uses old parameters.
    For scripts and tests; the web sign-in uses the three steps separately so that no
    transaction is open while the hash is checked."""
    user, updated = check_password(login_candidate(session, email), password)
    if user is not None and updated is not None:
        user_store.set_password_hash(session, user.id, updated)
    return user


def change_password(session: Session, email: str, password_hash: str, *, now: datetime) -> int:
    """Writes: replace the user's password hash (from
    :func:`mailer.accounts.passwords.hash_password`) and end every open session; returns
    how many ended. NotFoundError for an unknown user."""
    user = require_user(session, email)
    user_store.set_password_hash(session, user.id, password_hash)
    return user_store.revoke_user_web_sessions(session, user.id, now)


def save_rehash(session: Session, user_id: int, password_hash: str) -> None:
    """Writes: a hash recomputed with newer parameters at a successful sign-in."""
    user_store.set_password_hash(session, user_id, password_hash)
