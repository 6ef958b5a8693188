"""The web editor's autosaved text (one per user and release; release None: a new one)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.store.tables import EditorDraft

__all__ = ["discard_draft", "find_draft", "save_draft"]


def _where(user_id: int, release_id: int | None) -> list[object]:
    same = EditorDraft.release_id.is_(None) if release_id is None else EditorDraft.release_id == release_id
    return [EditorDraft.user_id == user_id, same]


def find_draft(session: Session, user_id: int, release_id: int | None) -> EditorDraft | None:
    """The user's autosaved text for the release (or for a new one), or None."""
    return session.scalar(select(EditorDraft).where(*_where(user_id, release_id)).limit(1))  # type: ignore[arg-type]


def save_draft(session: Session, user_id: int, release_id: int | None, source: str, *, now: datetime) -> None:
    """Writes: the user's autosaved text for the release, created or replaced."""
    found = find_draft(session, user_id, release_id)
    if found is None:
        session.add(EditorDraft(user_id=user_id, release_id=release_id, source=source, updated_at=now))
    else:
        found.source = source
        found.updated_at = now
    session.flush()


def discard_draft(session: Session, user_id: int, release_id: int | None) -> None:
    """Writes: forget the user's autosaved text for the release (it was saved for real)."""
    session.execute(delete(EditorDraft).where(*_where(user_id, release_id)))  # type: ignore[arg-type]
