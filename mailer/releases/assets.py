"""A release's press kit: photos and documents attached to it, checked for type and size,
kept in the asset storage (:mod:`mailer.releases.storage`).

Assets are part of what is sent (every message links them; a small document may travel
as a true attachment), so they are part of the content hash: attaching or removing one
is an edit — a submitted or approved release returns to draft and needs approval again,
and a release that is sending or sent cannot change its kit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import ReleaseAction, ReleaseStatus, allowed_actions
from mailer.message import check_header_value
from mailer.releases import holds, workflow
from mailer.releases.filetypes import human_size, safe_filename, sniff
from mailer.releases.storage import AssetStorage
from mailer.store import assets as asset_store
from mailer.store import releases as release_store
from mailer.store.tables import ReleaseAsset

__all__ = ["Attached", "attach_asset", "remove_asset"]

#: Longest caption and alt text.
MAX_TEXT = 500


@dataclass(frozen=True)
class Attached:
    """An asset just attached, and what its author should know (a true attachment's cost)."""

    asset: ReleaseAsset
    warnings: tuple[str, ...] = ()


def _text(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = " ".join(value.split())
    check_header_value(name, value)  # one line, no control characters
    if len(value) > MAX_TEXT:
        raise InputError(f"{name}: at most {MAX_TEXT} characters")
    return value


def _edit(session: Session, release_id: int, *, actor: str, now: datetime, note: str) -> None:
    """Record a kit change as an edit of the release (back to draft when it was submitted
    or approved); WorkflowError when the release can no longer change."""
    release = release_store.get_release(session, release_id, for_update=True)
    status = ReleaseStatus(release.status)
    if ReleaseAction.EDIT not in allowed_actions(status):
        raise WorkflowError(f"release {release_id} is {status.value}: its press kit can no longer change")
    release_store.add_editor(session, release_id, actor, now=now)
    if status is not ReleaseStatus.DRAFT:
        note = f"{note} while {status.value}: back to draft, approval needed again"
    workflow.move(session, release_id, ReleaseStatus.DRAFT, actor=actor, now=now, note=note, src=status)
    release.content_hash = None
    holds.clear(release)


def attach_asset(
    session: Session,
    release_id: int,
    data: bytes,
    filename: str,
    *,
    caption: str | None,
    alt: str | None,
    attach: bool = False,
    actor: str,
    storage: AssetStorage,
    settings: Settings,
    now: datetime,
) -> Attached:
    """Writes: add a file to the release's press kit (an edit of the release, see the
    module docstring) and store its bytes.

    Images (PNG, JPEG, GIF, WebP) get their pixel size read and an alt text (the caption
    when none is given); ``attach`` asks for a document to also travel as a true
    attachment (only up to ``assets.max_attachment_bytes``, with a warning). Raises
    InputError for an unaccepted type, a file too large, an empty file, an image attached
    as a file, text with line breaks; WorkflowError when the release cannot change.
    """
    actor = workflow.check_actor(actor)
    name = safe_filename(filename)
    limits = settings.assets
    if not data:
        raise InputError(f"{name}: the file is empty")
    kind = sniff(data, name)
    cap = limits.max_image_bytes if kind.kind == "image" else limits.max_document_bytes
    if len(data) > cap:
        raise InputError(f"{name}: {human_size(len(data))} is over the {kind.kind} limit of {human_size(cap)}")
    caption_text = _text(caption, "--caption")
    alt_text = _text(alt, "--alt")
    warnings: list[str] = []
    if attach:
        if kind.kind == "image":
            raise InputError(f"{name}: images are shown from the newsroom, never attached")
        if len(data) > limits.max_attachment_bytes:
            raise InputError(
                f"{name}: {human_size(len(data))} is too large to attach to every message "
                f"(assets.max_attachment_bytes is {human_size(limits.max_attachment_bytes)}); it goes as a link"
            )
        warnings.append(
            f"{name} travels in every message ({human_size(len(data))} each): attachments weigh down inboxes "
            "and trip spam filters, and downloads of it are not recorded; a link is the better default"
        )
    if kind.kind == "image" and alt_text is None:
        alt_text = caption_text or name.rsplit(".", 1)[0].replace("-", " ").replace("_", " ")
    _edit(session, release_id, actor=actor, now=now, note=f"attached {name}")
    sha = hashlib.sha256(data).hexdigest()
    key = f"releases/{release_id}/{sha[:40]}"
    storage.put(key, data)
    asset = asset_store.insert_asset(
        session,
        ReleaseAsset(
            release_id=release_id,
            kind=kind.kind,
            filename=name,
            content_type=kind.content_type,
            size=len(data),
            sha256=sha,
            width=kind.width,
            height=kind.height,
            caption=caption_text,
            alt=alt_text,
            attached=attach,
            storage_key=key,
            created_at=now,
        ),
    )
    return Attached(asset, tuple(warnings))


def remove_asset(
    session: Session, release_id: int, asset_id: int, *, actor: str, storage: AssetStorage, now: datetime
) -> ReleaseAsset:
    """Writes: take an asset out of the release's press kit (an edit of the release);
    its bytes are deleted once no asset row uses them. Raises NotFoundError, WorkflowError."""
    actor = workflow.check_actor(actor)
    asset = asset_store.get_asset(session, release_id, asset_id)
    _edit(session, release_id, actor=actor, now=now, note=f"removed {asset.filename}")
    asset_store.delete_asset(session, asset)
    session.flush()
    if not asset_store.key_in_use(session, asset.storage_key):
        storage.delete(asset.storage_key)
    return asset
