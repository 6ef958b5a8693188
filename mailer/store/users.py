"""Queries on staff users (the ``users`` table). Callers own the transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.tables import User


def find_user(session: Session, email: str) -> User | None:
    """The user with this (normalized) address, active or not."""
    return session.scalar(select(User).where(User.email == email))


def get_user_by_id(session: Session, user_id: int) -> User | None:
    """The user with this id, active or not."""
    return session.get(User, user_id)


def user_by_token_hash(session: Session, token_hash: str) -> User | None:
    """The user whose API token hashes to ``token_hash`` (sha256 hex), active or not."""
    return session.scalar(select(User).where(User.api_token_hash == token_hash))


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


def set_token_hash(session: Session, user_id: int, token_hash: str | None) -> None:
    """Writes: replace the user's API token hash (None revokes the token)."""
    session.execute(update(User).where(User.id == user_id).values(api_token_hash=token_hash))


def set_password_hash(session: Session, user_id: int, password_hash: str) -> None:
    """Writes: replace the user's password hash (after a rehash with newer parameters)."""
    session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))


def deactivate_user(session: Session, user_id: int) -> None:
    """Writes: mark the user inactive and revoke their API token."""
    session.execute(update(User).where(User.id == user_id).values(active=False, api_token_hash=None))
