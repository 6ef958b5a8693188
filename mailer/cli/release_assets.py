"""``mailer releases attach | assets | detach``: a release's press kit (photos and
documents). :func:`add_commands` puts them on the ``releases`` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mailer.accounts import permits
from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, ReleaseId, err, id_check, out, print_json, runtime
from mailer.domain.errors import InputError
from mailer.releases.assets import attach_asset, remove_asset
from mailer.releases.filetypes import human_size
from mailer.releases.storage import storage_for
from mailer.store import assets as asset_store
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import ReleaseAsset

__all__ = ["add_commands", "asset_json"]

AssetId = Annotated[
    int, typer.Argument(metavar="ASSET_ID", callback=id_check("asset"), show_default=False, help="From `assets ID`.")
]


def add_commands(group: typer.Typer) -> None:
    """Add these commands to ``group`` (the ``releases`` group)."""
    group.command("attach")(releases_attach)
    group.command("assets")(releases_assets)
    group.command("detach")(releases_detach)


def asset_json(asset: ReleaseAsset) -> dict[str, Any]:
    """An asset as the commands print it."""
    return {
        "id": asset.id,
        "release": asset.release_id,
        "kind": asset.kind,
        "filename": asset.filename,
        "content_type": asset.content_type,
        "size": asset.size,
        "width": asset.width,
        "height": asset.height,
        "caption": asset.caption,
        "alt": asset.alt,
        "attached": asset.attached,
        "sha256": asset.sha256,
    }


def releases_attach(
    release_id: ReleaseId,
    file: Annotated[Path, typer.Argument(help="A photo (PNG, JPEG, GIF, WebP) or document (PDF, Office, text).")],
    caption: Annotated[str | None, typer.Option("--caption", help="Shown with the file in messages.")] = None,
    alt: Annotated[str | None, typer.Option("--alt", help="An image's alt text (default: the caption).")] = None,
    attach: Annotated[
        bool,
        typer.Option("--attach", help="A small document also travels inside every message (capped; links are better)."),
    ] = False,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a photo or document to a release's press kit (messages link it; a submitted or
    approved release returns to draft)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from exc
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, permits.Action.WRITE)
        done = attach_asset(
            session,
            release_id,
            data,
            file.name,
            caption=caption,
            alt=alt,
            attach=attach,
            actor=who,
            storage=storage_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
        shown = asset_json(done.asset)
        status = release_store.get_release(session, release_id).status
    for warning in done.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if as_json:
        print_json({**shown, "release_status": status, "warnings": list(done.warnings)})
    else:
        size = f"{shown['width']}x{shown['height']}, " if shown["width"] else ""
        out.print(
            f"attached {shown['filename']} as asset {shown['id']} of release {release_id} "
            f"({shown['kind']}, {size}{human_size(shown['size'])}); release is {status}",
            highlight=False,
        )


def releases_assets(release_id: ReleaseId, as_json: JsonOpt = False) -> None:
    """List a release's press kit."""
    with runtime() as rt, transaction(rt.sessions) as session:
        release_store.get_release(session, release_id)
        rows = [asset_json(a) for a in asset_store.release_assets(session, release_id)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"release {release_id} has no assets (add one: mailer releases attach {release_id} FILE)")
        return
    table = Table("id", "kind", "file", "size", "caption", "alt", "attached")
    for r in rows:
        dims = f"{r['width']}x{r['height']} " if r["width"] else ""
        table.add_row(
            str(r["id"]),
            r["kind"],
            escape(r["filename"]),
            dims + human_size(r["size"]),
            escape(r["caption"] or ""),
            escape(r["alt"] or ""),
            "yes" if r["attached"] else "",
        )
    out.print(table)


def releases_detach(release_id: ReleaseId, asset_id: AssetId, actor: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Remove an asset from a release's press kit (a submitted or approved release returns to draft)."""
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, permits.Action.WRITE)
        asset = remove_asset(session, release_id, asset_id, actor=who, storage=storage_for(rt.settings), now=rt.clock())
        shown = asset_json(asset)
    if as_json:
        print_json(shown)
    else:
        out.print(f"removed {shown['filename']} (asset {asset_id}) from release {release_id}", highlight=False)
