"""Queries about release assets (press-kit photos and documents) and their downloads.

Functions that change data say so ("Writes:"). Callers own the transaction.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailer.domain.errors import NotFoundError
from mailer.store.tables import ReleaseAsset

__all__ = [
    "delete_asset",
    "get_asset",
    "insert_asset",
    "key_in_use",
    "release_assets",
]


def release_assets(session: Session, release_id: int) -> list[ReleaseAsset]:
    """The release's assets in their order."""
    return list(
        session.scalars(
            select(ReleaseAsset).where(ReleaseAsset.release_id == release_id).order_by(ReleaseAsset.position)
        )
    )


def get_asset(session: Session, release_id: int, asset_id: int) -> ReleaseAsset:
    """Asset ``asset_id`` of release ``release_id``; NotFoundError when it is not one of its."""
    asset = session.get(ReleaseAsset, asset_id)
    if asset is None or asset.release_id != release_id:
        raise NotFoundError(f"release {release_id} has no asset {asset_id} (see `mailer releases assets`)")
    return asset


def insert_asset(session: Session, asset: ReleaseAsset) -> ReleaseAsset:
    """Writes: a new asset, placed after the release's others."""
    last = session.scalar(select(func.max(ReleaseAsset.position)).where(ReleaseAsset.release_id == asset.release_id))
    asset.position = (last or 0) + 1
    session.add(asset)
    session.flush()
    return asset


def delete_asset(session: Session, asset: ReleaseAsset) -> None:
    """Writes: remove the asset row."""
    session.execute(delete(ReleaseAsset).where(ReleaseAsset.id == asset.id))


def key_in_use(session: Session, storage_key: str) -> bool:
    """True when some asset row still stores its bytes under ``storage_key``."""
    return session.scalar(select(ReleaseAsset.id).where(ReleaseAsset.storage_key == storage_key).limit(1)) is not None
