"""Queries on staff users (the ``users`` table). Callers own the transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailer.store.tables import User, WebSession


def find_user(session: Session, email: str) -> User | None:
    """The user with this (normalized) address, active or not."""
    return session.scalar(select(User).where(User.email == email))


def get_user_by_id(session: Session, user_id: int) -> User | None:
    """The user with this id, active or not."""
    return session.get(User, user_id)


def user_by_token_hash(session: Session, token_hash: str) -> User | None:
    """The user whose API token hashes to ``token_hash`` (sha256 hex), active or not."""
    return session.scalar(select(User).where(User.api_token_hash == token_hash))


def any_user(session: Session) -> bool:
    """True when at least one user account exists (enabled or not)."""
    return session.scalar(select(User.id).limit(1)) is not None


def all_users(session: Session) -> list[User]:
    """Every user, by address."""
    return list(session.scalars(select(User).order_by(User.email)))


def insert_user(
    session: Session, *, email: str, name: str | None, role: str, password_hash: str | None, now: datetime
) -> User:
    """Writes: a new active user (the caller has checked the address is free)."""
    user = User(email=email, name=name, role=role, password_hash=password_hash, active=True, created_at=now)
    session.add(user)
    session.flush()
    return user


def set_token(
    session: Session, user_id: int, token_hash: str | None, *, scope: str | None, expires_at: datetime | None
) -> None:
    """Writes: replace the user's API token hash, scope and expiry (None revokes the token)."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(api_token_hash=token_hash, api_token_scope=scope, api_token_expires_at=expires_at)
    )


def set_password_hash(session: Session, user_id: int, password_hash: str) -> None:
    """Writes: replace the user's password hash (after a rehash with newer parameters)."""
    session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))


def deactivate_user(session: Session, user_id: int) -> None:
    """Writes: mark the user inactive and revoke their API token."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(active=False, api_token_hash=None, api_token_scope=None, api_token_expires_at=None)
    )


# ---------------------------------------------------------------- web sessions


def insert_web_session(session: Session, *, id_hash: str, user_id: int, now: datetime, expires_at: datetime) -> None:
    """Writes: a new staff session."""
    session.add(WebSession(id_hash=id_hash, user_id=user_id, created_at=now, last_seen_at=now, expires_at=expires_at))
    session.flush()


def web_session_with_user(session: Session, id_hash: str) -> tuple[WebSession, User] | None:
    """The session whose id hashes to ``id_hash`` and its user, whatever their state."""
    row = session.execute(
        select(WebSession, User).join(User, User.id == WebSession.user_id).where(WebSession.id_hash == id_hash)
    ).first()
    return (row[0], row[1]) if row is not None else None


def touch_web_session(session: Session, id_hash: str, now: datetime) -> None:
    """Writes: the session was used at ``now``."""
    session.execute(update(WebSession).where(WebSession.id_hash == id_hash).values(last_seen_at=now))


def revoke_web_session(session: Session, id_hash: str, now: datetime) -> None:
    """Writes: end one session (no-op when already ended)."""
    session.execute(
        update(WebSession).where(WebSession.id_hash == id_hash, WebSession.revoked_at.is_(None)).values(revoked_at=now)
    )


def revoke_user_web_sessions(session: Session, user_id: int, now: datetime) -> int:
    """Writes: end every open session of a user; returns how many."""
    result = session.execute(
        update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None)).values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def purge_web_sessions(session: Session, user_id: int, before: datetime) -> None:
    """Writes: forget a user's sessions that expired before ``before``."""
    session.execute(delete(WebSession).where(WebSession.user_id == user_id, WebSession.expires_at < before))
