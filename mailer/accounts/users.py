"""Staff users: accounts, passwords (argon2 via pwdlib), API tokens, and what each role may do.

Roles (``mailer.domain.states.Role``):

    admin      everything
    publicist  read, preview, submit, schedule, send proofs, cancel their own drafts
    approver   read, preview, approve
    viewer     read, preview

:func:`permits` is the one place that decides whether a user may take an action on a
release; the web pages ask it both to show buttons and to refuse requests. The state
machine (``mailer.domain.states``) still decides whether the move is legal at all.

API tokens are random (256 bits) and shown once; only their SHA-256 is stored, so a
leaked database does not leak usable tokens (a slow hash buys nothing for random
secrets of this length). A token has a scope (:class:`TokenScope`: ``read`` calls only
the API's reading routes, ``write`` also the ones that change state) and may expire.

Staff sign-in sessions live in the ``web_sessions`` table: the browser holds a random
id, the table its SHA-256, the user, and when it was created, last used, expires and was
revoked. Signing out, a password change and disabling the user revoke sessions, so a
copied cookie stops working at once.

Password hashing (Argon2, tens of milliseconds of CPU) never runs inside a database
transaction: :func:`login_candidate` reads, :func:`check_password` verifies with no
database at all, and the caller writes (a rehash, a session) in a short transaction of
its own. On SQLite a write transaction holds the one write lock, and a flood of sign-in
attempts must not queue the unsubscribes behind it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.orm import Session

from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.states import ReleaseStatus, Role
from mailer.store import users as user_store
from mailer.store.tables import User

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "Action",
    "ApiCaller",
    "LoginCandidate",
    "SignedIn",
    "StaffUser",
    "TokenScope",
    "add_user",
    "authenticate",
    "change_password",
    "check_password",
    "cli_actor",
    "disable_user",
    "end_session",
    "hash_password",
    "hash_token",
    "issue_token",
    "list_users",
    "login_candidate",
    "parse_role",
    "parse_scope",
    "permits",
    "session_owner",
    "start_session",
    "token_caller",
    "touch_session",
    "user_by_id",
    "user_for_token",
]

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "mlr_"

_HASHER = PasswordHash((Argon2Hasher(),))
# Verified against when the address is unknown, so a miss costs what a hit costs and
# the response time does not tell which addresses have accounts.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class TokenScope(StrEnum):
    """What an API token may do: ``read`` only reads; ``write`` may also change state."""

    READ = "read"
    WRITE = "write"


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


@dataclass(frozen=True)
class ApiCaller:
    """The user behind an API token, and the token's scope."""

    user: StaffUser
    scope: TokenScope


def parse_scope(value: str) -> TokenScope:
    """``value`` as a TokenScope; InputError naming the choices otherwise."""
    try:
        return TokenScope(value.strip().lower())
    except ValueError:
        raise InputError(f"--scope: {value!r} is not one of: read, write") from None


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


def cli_actor(session: Session, name: str, action: Action) -> str:
    """Who ``--as NAME`` is when ``action`` is taken on the command line.

    With no user accounts at all (a single-person install) the name is taken as given.
    Once accounts exist, NAME must be the address of an enabled user whose role permits
    ``action`` (as on the staff pages); their address is returned, so the two-person rule
    compares the same names whichever way a release was handled. Raises NotFoundError
    for an unknown user, WorkflowError for a disabled one or a role that may not.
    """
    if not user_store.any_user(session):
        return name
    try:
        user = user_store.find_user(session, normalize_email(name))
    except InputError:
        user = None
    if user is None:
        raise NotFoundError(f"no user '{name}' (mailer users list)")
    if not user.active:
        raise WorkflowError(f"user '{name}' is disabled and cannot {action.value}")
    staff = _staff(user)
    if not permits(staff, action):
        article = "an" if staff.role.value[0] in "aeiou" else "a"
        raise WorkflowError(f"user '{name}' is {article} {staff.role.value} and cannot {action.value}")
    return staff.email


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


def _require_user(session: Session, email: str) -> User:
    address = normalize_email(email)
    user = user_store.find_user(session, address)
    if user is None:
        raise NotFoundError(f"no user {address} (see `mailer users list`)")
    return user


def hash_token(token: str) -> str:
    """SHA-256 hex of an API token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    session: Session, email: str, *, scope: TokenScope = TokenScope.READ, expires_at: datetime | None = None
) -> str:
    """Writes: a new API token for an active user, replacing any earlier one; returns it.

    The token is returned once and never stored. ``expires_at`` None: it does not
    expire. Raises NotFoundError for an unknown user and InputError for a disabled one.
    """
    user = _require_user(session, email)
    if not user.active:
        raise InputError(f"user {user.email} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user_store.set_token(session, user.id, hash_token(token), scope=scope.value, expires_at=expires_at)
    return token


def disable_user(session: Session, email: str, *, now: datetime) -> int:
    """Writes: the user can no longer sign in or use their token, and every open session
    ends at once; returns how many sessions were ended. Raises NotFoundError for an
    unknown user."""
    user = _require_user(session, email)
    user_store.deactivate_user(session, user.id)
    return user_store.revoke_user_web_sessions(session, user.id, now)


# ---------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    """The Argon2 hash of a new password (slow: call it outside any transaction).
    InputError when the password is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


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
    return LoginCandidate(_staff(user), user.password_hash)


def check_password(candidate: LoginCandidate, password: str) -> tuple[StaffUser | None, str | None]:
    """No database: (the user, else None; a new hash when the stored one uses old
    parameters, else None). An unknown user costs the same work as a known one."""
    if candidate.user is None or candidate.password_hash is None:
        _HASHER.verify(password, _DUMMY_HASH)
        return None, None
    valid, updated = _HASHER.verify_and_update(password, candidate.password_hash)
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
    """Writes: replace the user's password hash (from :func:`hash_password`) and end
    every open session; returns how many ended. NotFoundError for an unknown user."""
    user = _require_user(session, email)
    user_store.set_password_hash(session, user.id, password_hash)
    return user_store.revoke_user_web_sessions(session, user.id, now)


def save_rehash(session: Session, user_id: int, password_hash: str) -> None:
    """Writes: a hash recomputed with newer parameters at a successful sign-in."""
    user_store.set_password_hash(session, user_id, password_hash)


# ---------------------------------------------------------------- web sessions


def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    """An open session's user and when the session was last used."""

    user: StaffUser
    last_seen_at: datetime


def start_session(
    session: Session, user_id: int, *, now: datetime, lifetime: timedelta, replaces: str | None = None
) -> str:
    """Writes: a new session for ``user_id``; returns its id (for the browser only).
    ``replaces``, the browser's earlier session id, is revoked: an id never survives a
    sign-in (no session fixation)."""
    if replaces:
        user_store.revoke_web_session(session, _session_hash(replaces), now)
    user_store.purge_web_sessions(session, user_id, now - timedelta(days=30))
    session_id = secrets.token_urlsafe(32)
    user_store.insert_web_session(
        session, id_hash=_session_hash(session_id), user_id=user_id, now=now, expires_at=now + lifetime
    )
    return session_id


def session_owner(session: Session, session_id: str, *, now: datetime, idle: timedelta) -> SignedIn | None:
    """Reads: the active user of an open session, else None (unknown, revoked, expired,
    idle longer than ``idle``, or the user disabled)."""
    if not session_id or len(session_id) > 200:
        return None
    found = user_store.web_session_with_user(session, _session_hash(session_id))
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or now >= row.expires_at or now - row.last_seen_at >= idle or not user.active:
        return None
    return SignedIn(_staff(user), row.last_seen_at)


def touch_session(session: Session, session_id: str, *, now: datetime) -> None:
    """Writes: the session was used at ``now`` (keeps it from going idle)."""
    user_store.touch_web_session(session, _session_hash(session_id), now)


def end_session(session: Session, session_id: str, *, now: datetime) -> None:
    """Writes: revoke one session (signing out)."""
    user_store.revoke_web_session(session, _session_hash(session_id), now)


# ---------------------------------------------------------------- lookups


def user_by_id(session: Session, user_id: int) -> StaffUser | None:
    """The active user with this id, else None."""
    user = user_store.get_user_by_id(session, user_id)
    return _staff(user) if user is not None and user.active else None


def token_caller(session: Session, token: str, *, now: datetime) -> ApiCaller | None:
    """The active user owning this API token and its scope, else None (unknown, revoked
    or expired token, or a disabled user)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    user = user_store.user_by_token_hash(session, hash_token(token))
    if user is None or not user.active:
        return None
    if user.api_token_expires_at is not None and now >= user.api_token_expires_at:
        return None
    # An unknown stored scope grants the least.
    scope = TokenScope.WRITE if user.api_token_scope == TokenScope.WRITE.value else TokenScope.READ
    return ApiCaller(_staff(user), scope)


def user_for_token(session: Session, token: str, *, now: datetime) -> StaffUser | None:
    """The active user owning this unexpired API token, else None."""
    caller = token_caller(session, token, now=now)
    return caller.user if caller is not None else None
