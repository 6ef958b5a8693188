"""Managing lists and segments (the CLI's ``lists``/``segments`` commands and the staff
pages share these): delete with their guards, rename, members in and out.

Guards: a segment that a release goes (or went) to is never deleted — the release's
variants, deliveries and report point at it; a list that a segment's rule names is
deleted only with ``force`` (the segment would silently select nobody from it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.domain.addresses import normalize_email
from mailer.domain.errors import InputError, WorkflowError
from mailer.store import lists as list_store


@dataclass(frozen=True)
class Removed:
    removed: list[str]
    not_members: list[str]


def delete_segment(session: Session, slug: str) -> None:
    """Writes: delete segment ``slug``. WorkflowError naming the releases when any release
    uses it; NotFoundError when there is no such segment."""
    used = list_store.releases_using_segment(session, slug)
    if used:
        ids = ", ".join(f"#{i}" for i in used[:10]) + (" ..." if len(used) > 10 else "")
        raise WorkflowError(f"segment {slug!r} is used by releases {ids}: it cannot be deleted")
    list_store.delete_segment(session, slug)


def delete_list(session: Session, slug: str, *, force: bool = False) -> int:
    """Writes: delete list ``slug`` and its memberships (contacts stay); returns how many
    members it had. WorkflowError when a segment's rule names the list (unless ``force``)."""
    naming = list_store.segments_naming_list(session, slug)
    if naming and not force:
        raise WorkflowError(
            f"list {slug!r} is named by segments {', '.join(naming)}: change them first (or delete with force)"
        )
    return list_store.delete_list(session, slug)


def rename_list(session: Session, slug: str, name: str) -> None:
    """Writes: the list's display name (its slug, which rules name, stays)."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 200 or any(ord(c) < 32 for c in cleaned):
        raise InputError("list name: 1 to 200 characters on one line")
    list_store.rename_list(session, slug, cleaned)


def remove_members(session: Session, slug: str, emails: Sequence[str]) -> Removed:
    """Writes: take these addresses off list ``slug``. InputError for a bad address (nothing
    removed); addresses that were not members come back in ``not_members``."""
    wanted = [normalize_email(e) for e in emails]
    removed = list_store.remove_members(session, slug, wanted)
    return Removed(removed, sorted(set(wanted) - set(removed)))


def add_members(session: Session, slug: str, contact_ids: Sequence[int], *, now: datetime) -> int:
    """Writes: put these contacts on list ``slug``; returns how many were new members."""
    return list_store.add_members_by_id(session, slug, contact_ids, now=now)
