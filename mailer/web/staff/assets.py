"""A release's press kit on its staff page: the upload form, removal, and the files
themselves for staff (the public and per-recipient ways in are :mod:`mailer.web.newsroom`).

The upload is ``multipart/form-data``, which asgi-csrf cannot read with the installed
python-multipart, so the form is sent by htmx with the CSRF token in the ``x-csrftoken``
header (and answered with ``HX-Redirect``).

Uploading or removing is an edit of the release (:mod:`mailer.releases.assets`): a
submitted or approved release returns to draft. Only roles that may write releases may.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from mailer.accounts.permits import Action, permits
from mailer.domain.errors import InputError, MailerError, NotFoundError, WorkflowError
from mailer.releases.assets import attach_asset, remove_asset
from mailer.releases.storage import storage_for
from mailer.store import assets as asset_store
from mailer.store.db import transaction
from mailer.web.newsroom import asset_headers
from mailer.web.staff.view import CurrentUser, StaffView

log = logging.getLogger("mailer.web.staff")

#: Read at most this much of an upload (the type limits are checked after).
_READ_CAP = 64 * 1024 * 1024


class AssetPages:
    """``POST /releases/{id}/assets``, ``POST .../assets/{asset_id}/remove``, ``GET .../assets/{asset_id}``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view
        self.runtime = view.runtime

    def _back(self, request: Request, release_id: int, level: str, text: str) -> Response:
        self.view.flash(request, level, text)
        if request.headers.get("hx-request"):
            # the upload form is sent by htmx (see release.html): a full page load follows
            return Response(status_code=204, headers={"HX-Redirect": f"/releases/{release_id}#kit"})
        return RedirectResponse(f"/releases/{release_id}#kit", status_code=303)

    async def upload(
        self,
        request: Request,
        release_id: int,
        user: CurrentUser,
        file: Annotated[UploadFile, File()],
        caption: Annotated[str, Form(max_length=500)] = "",
        alt: Annotated[str, Form(max_length=500)] = "",
        attach: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        """Add the uploaded file to the release's press kit."""
        if not permits(user, Action.WRITE):
            return self.view.forbidden(request, user, Action.WRITE)
        data = await file.read(_READ_CAP + 1)
        name = file.filename or "file"
        await file.close()
        try:
            if len(data) > _READ_CAP:
                raise InputError(f"{name}: too large")
            with transaction(self.runtime.sessions) as session:
                done = attach_asset(
                    session,
                    release_id,
                    data,
                    name,
                    caption=caption,
                    alt=alt,
                    attach=bool(attach),
                    actor=user.email,
                    storage=storage_for(self.runtime.settings),
                    settings=self.runtime.settings,
                    now=self.runtime.clock(),
                )
                text = f"attached {done.asset.filename}" + "".join(f"; warning: {w}" for w in done.warnings)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except (InputError, WorkflowError, MailerError) as exc:
            return self._back(request, release_id, "error", f"not attached: {exc}")
        log.info("%s attached %s to release %s", user.email, name, release_id)
        return self._back(request, release_id, "ok", text)

    def remove(self, request: Request, release_id: int, asset_id: int, user: CurrentUser) -> Response:
        """Take an asset out of the release's press kit."""
        if not permits(user, Action.WRITE):
            return self.view.forbidden(request, user, Action.WRITE)
        try:
            with transaction(self.runtime.sessions) as session:
                asset = remove_asset(
                    session,
                    release_id,
                    asset_id,
                    actor=user.email,
                    storage=storage_for(self.runtime.settings),
                    now=self.runtime.clock(),
                )
                name = asset.filename
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except (WorkflowError, MailerError) as exc:
            return self._back(request, release_id, "error", f"not removed: {exc}")
        return self._back(request, release_id, "ok", f"removed {name}")

    def file(self, request: Request, release_id: int, asset_id: int, user: CurrentUser) -> Response:
        """The file itself, for staff (any state of the release)."""
        try:
            with self.view.read() as session:
                asset = asset_store.get_asset(session, release_id, asset_id)
                key, content_type, name, kind = asset.storage_key, asset.content_type, asset.filename, asset.kind
            data = storage_for(self.runtime.settings).get(key)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        return Response(data, headers=asset_headers(content_type, name, kind=kind))
