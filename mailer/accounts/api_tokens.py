"""API tokens: random (256 bits), shown once, stored as SHA-256.

Only the hash is stored, so a leaked database does not leak usable tokens (a slow hash
buys nothing for random secrets of this length). A token has a scope
(:class:`TokenScope`: ``read`` calls only the API's reading routes, ``write`` also the
ones that change state) and may expire.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from mailer.accounts.users import StaffUser, require_user, staff_user
from mailer.domain.errors import InputError
from mailer.store import users as user_store

TOKEN_PREFIX = "mlr_"


class TokenScope(StrEnum):
    """What an API token may do: ``read`` only reads; ``write`` may also change state."""

    READ = "read"
    WRITE = "write"


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
    user = require_user(session, email)
    if not user.active:
        raise InputError(f"user {user.email} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user_store.set_token(session, user.id, hash_token(token), scope=scope.value, expires_at=expires_at)
    return token


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
    return ApiCaller(staff_user(user), scope)


def user_for_token(session: Session, token: str, *, now: datetime) -> StaffUser | None:
    """The active user owning this unexpired API token, else None."""
    caller = token_caller(session, token, now=now)
    return caller.user if caller is not None else None
