"""The press-kit links of one message: where each asset is shown and downloaded from.

* An image is shown from its hosted URL on the release's newsroom page
  (``{site}/newsroom/{client}/{release}/assets/{id}/{name}``), with the *release's*
  signed token (``?k=``) so it shows before the embargo lifts: a token shared by every
  recipient, so fetching an image tells nothing about who opened the message (no
  tracking pixel, no open tracking).
* Every download link carries the *delivery's* signed token
  (``{site}/kit/{token}/{id}/{name}``): clicking it is a first-party action, recorded as
  that delivery's "downloaded the kit" event.
* Without tokens (previews) links are the public newsroom URLs.

Pure: strings in, strings out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mailer.message.spec import KitAsset, VariantSpec

__all__ = ["MAX_IMAGE_WIDTH", "asset_links", "view_online_url"]

#: Widest an image is shown in a message (the 640-pixel column less its padding).
MAX_IMAGE_WIDTH = 560


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _public(spec: VariantSpec, asset: KitAsset) -> str:
    return f"{(spec.site_url or '').rstrip('/')}{spec.newsroom_path}/assets/{asset.id}/{quote(asset.filename)}"


def asset_links(spec: VariantSpec, kit_token: str | None, release_token: str | None) -> list[dict[str, Any]]:
    """One mapping per asset for the templates: ``kind``, ``filename``, ``caption``,
    ``alt``, ``size`` (text), ``url`` (download), ``src`` (an image's display URL) and
    the image's display ``width``/``height`` (scaled to :data:`MAX_IMAGE_WIDTH`)."""
    site = (spec.site_url or "").rstrip("/")
    out: list[dict[str, Any]] = []
    for asset in spec.assets:
        public = _public(spec, asset)
        src = f"{public}?k={release_token}" if release_token else public
        url = f"{site}/kit/{kit_token}/{asset.id}/{quote(asset.filename)}" if kit_token else src
        width, height = asset.width, asset.height
        if width and height and width > MAX_IMAGE_WIDTH:
            width, height = MAX_IMAGE_WIDTH, max(1, round(height * MAX_IMAGE_WIDTH / width))
        out.append(
            {
                "kind": asset.kind,
                "filename": asset.filename,
                "caption": asset.caption or "",
                "alt": asset.alt or "",
                "size": _size(asset.size),
                "url": url,
                "src": src,
                "width": width,
                "height": height,
                "attached": asset.attached,
            }
        )
    return out


def view_online_url(spec: VariantSpec, kit_token: str | None) -> str | None:
    """The release's newsroom page, with the delivery's token (it opens the page before
    the embargo lifts); None when the spec has no newsroom page."""
    if not spec.site_url or not spec.newsroom_path:
        return None
    page = f"{spec.site_url.rstrip('/')}{spec.newsroom_path}"
    return f"{page}?t={kit_token}" if kit_token else page
