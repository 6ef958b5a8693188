"""Queries about release assets (press-kit photos and documents) and their downloads.

Functions that change data say so ("Writes:"). Callers own the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.orm import Session

from mailer.domain.errors import NotFoundError
from mailer.store.tables import Delivery, DeliveryEvent, ReleaseAsset

__all__ = [
    "DOWNLOADED",
    "Downloader",
    "KitDelivery",
    "contacts_who_downloaded",
    "delete_asset",
    "download_counts",
    "get_asset",
    "insert_asset",
    "key_in_use",
    "kit_delivery",
    "record_download",
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


# --- downloads (first-party actions: a journalist clicked a kit link) ---------------------

#: The event kind of a kit download (its detail: "downloaded the kit: FILE").
DOWNLOADED = "downloaded"


@dataclass(frozen=True)
class KitDelivery:
    """The delivery a kit token names: whose it is and of which release."""

    delivery_id: int
    release_id: int
    contact_id: int


@dataclass(frozen=True)
class Downloader:
    """A recipient who downloaded from a release's press kit."""

    contact_id: int
    email: str | None
    delivery_id: int
    downloads: int
    first_at: datetime
    last_at: datetime


def kit_delivery(session: Session, delivery_id: int) -> KitDelivery | None:
    """The delivery ``delivery_id`` (None when there is none)."""
    row = session.execute(
        select(Delivery.id, Delivery.release_id, Delivery.contact_id).where(Delivery.id == delivery_id)
    ).one_or_none()
    return KitDelivery(row.id, row.release_id, row.contact_id) if row is not None else None


def record_download(session: Session, delivery_id: int, filename: str, now: datetime) -> None:
    """Writes: a "downloaded the kit" event of the delivery."""
    session.add(
        DeliveryEvent(delivery_id=delivery_id, kind=DOWNLOADED, detail=f"downloaded the kit: {filename}", at=now)
    )


def contacts_who_downloaded(session: Session, release_id: int) -> list[Downloader]:
    """Every recipient of the release who downloaded from its press kit at least once,
    with how often and when (first, last), first downloader first."""
    first = func.min(DeliveryEvent.at)
    rows = session.execute(
        select(
            Delivery.contact_id,
            Delivery.email,
            Delivery.id,
            func.count(DeliveryEvent.id),
            first,
            func.max(DeliveryEvent.at),
        )
        .join(DeliveryEvent, DeliveryEvent.delivery_id == Delivery.id)
        .where(Delivery.release_id == release_id, DeliveryEvent.kind == DOWNLOADED)
        .group_by(Delivery.contact_id, Delivery.email, Delivery.id)
        .order_by(first, Delivery.id)
    )
    return [Downloader(r[0], r[1], r[2], int(r[3]), r[4], r[5]) for r in rows]


def download_counts(session: Session, release_id: int) -> tuple[int, int]:
    """(downloads, recipients who downloaded) of the release's press kit."""
    row = session.execute(
        select(func.count(DeliveryEvent.id), func.count(distinct(DeliveryEvent.delivery_id)))
        .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(Delivery.release_id == release_id, DeliveryEvent.kind == DOWNLOADED)
    ).one()
    return int(row[0] or 0), int(row[1] or 0)
