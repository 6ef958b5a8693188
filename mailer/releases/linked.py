"""The release file of a linked release (correction, withdrawal, follow-up): what it
inherits from its parent and the subject prefix it carries (no writes).

Used when the linked release is created (:mod:`mailer.releases.threads`) and whenever
it is edited (:func:`mailer.releases.authoring.update_release`), so an edit can neither
drop the prefix nor need the keys the parent supplies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session

from mailer.domain.conversations import prefixed
from mailer.releases.source import ReleaseFile
from mailer.store import releases as release_store
from mailer.store.tables import Release

__all__ = ["PREFIX_KEY", "defaults_from", "keep_prefix", "with_prefix"]

#: Where a linked release keeps the subject prefix it was created with (in ``extra``).
PREFIX_KEY = "subject_prefix"


def defaults_from(session: Session, parent: Release, prefix: str) -> dict[str, Any]:
    """Front-matter keys a linked release's file may leave out, as the parent has them:
    ``title`` (with ``prefix``), ``client``, ``template``, ``segments`` (the parent's, in
    order) and ``topics``."""
    client = release_store.get_client_by_id(session, parent.client_id)
    segments = [seg.slug for _, seg in release_store.release_segments(session, parent.id)]
    found: dict[str, Any] = {
        "title": prefixed(parent.title, prefix),
        "client": client.slug,
        "template": parent.template,
        "segments": segments,
    }
    topics = (parent.extra or {}).get("topics") or []
    if topics:
        found["topics"] = list(topics)
    return found


def with_prefix(parsed: ReleaseFile, prefix: str) -> ReleaseFile:
    """``parsed`` with ``prefix`` in front of its subject and every per-segment subject."""
    if not prefix.strip():
        return parsed
    variants = {
        slug: dataclasses.replace(v, subject=prefixed(v.subject, prefix) if v.subject is not None else None)
        for slug, v in parsed.variants.items()
    }
    return dataclasses.replace(parsed, subject=prefixed(parsed.subject, prefix), variants=variants)


def keep_prefix(release: Release, prefix: str) -> None:
    """Remember the prefix on the release (its ``extra``), for later edits."""
    release.extra = {**(release.extra or {}), PREFIX_KEY: prefix}


def stored_prefix(release: Release) -> str:
    """The prefix the linked release was created with ("" when none)."""
    return str((release.extra or {}).get(PREFIX_KEY) or "")
