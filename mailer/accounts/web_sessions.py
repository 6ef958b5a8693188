"""Staff sign-in sessions, kept server-side in the ``web_sessions`` table.

The browser holds a random id; the table holds its SHA-256, the user, and when the
session was created, last used, expires and was revoked. Signing out, a password change
and disabling the user revoke sessions, so a copied cookie stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from mailer.accounts.users import StaffUser, staff_user
from mailer.store import users as user_store


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
    return SignedIn(staff_user(user), row.last_seen_at)


def touch_session(session: Session, session_id: str, *, now: datetime) -> None:
    """Writes: the session was used at ``now`` (keeps it from going idle)."""
    user_store.touch_web_session(session, _session_hash(session_id), now)


def end_session(session: Session, session_id: str, *, now: datetime) -> None:
    """Writes: revoke one session (signing out)."""
    user_store.revoke_web_session(session, _session_hash(session_id), now)
