"""Password hashing: Argon2 via pwdlib. No database.

Hashing costs tens of milliseconds of CPU and 64 MiB: callers run it outside any
database transaction (see :mod:`mailer.accounts.signin`). The dummy hash checked for
unknown addresses is made on first use, not at import: importing this module (every
``mailer`` process does) costs no Argon2 work.
"""

from __future__ import annotations

import secrets
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from mailer.domain.errors import InputError

MIN_PASSWORD_LENGTH = 10

_HASHER = PasswordHash((Argon2Hasher(),))


@cache
def _dummy_hash() -> str:
    """Verified against when the address is unknown, so a miss costs what a hit costs
    and the response time does not tell which addresses have accounts."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The Argon2 hash of a new password (slow: call it outside any transaction).
    InputError when the password is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify(password: str, stored: str) -> tuple[bool, str | None]:
    """(``password`` matches ``stored``; a new hash when ``stored`` uses old parameters, else None)."""
    return _HASHER.verify_and_update(password, stored)


def verify_nothing(password: str) -> None:
    """The work of one verification against no account (see :func:`_dummy_hash`)."""
    _HASHER.verify(password, _dummy_hash())
