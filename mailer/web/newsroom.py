"""Public press-kit routes: a delivery's kit links (``/kit/{token}/...``).

Every asset link in a message carries the signed kit token of that delivery
(:meth:`mailer.message.tokens.Tokens.kit`); fetching it (GET) records a "downloaded the
kit" event of that delivery, so staff see who took the photos and documents — a
first-party action, unlike a tracking pixel. A HEAD (link checkers) records nothing.

A token that is malformed, tampered, signed with a foreign or rotated-out key, of a
delivery that no longer exists, or of another release than the asset's gets the same
404 page as a bad unsubscribe token, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from mailer.domain.errors import NotFoundError
from mailer.domain.states import MAX_ID
from mailer.message.tokens import Tokens
from mailer.releases.storage import storage_for
from mailer.runtime import Runtime
from mailer.store import assets as asset_store
from mailer.store.db import transaction
from mailer.web.public import PUBLIC_HEADERS

__all__ = ["NewsroomRoutes", "asset_headers"]


def asset_headers(content_type: str, filename: str, *, kind: str) -> dict[str, str]:
    """Headers for serving a kit file: its stored type, never sniffed; images inline,
    documents as downloads; no script may run in anything we serve."""
    disposition = "inline" if kind == "image" else "attachment"
    return {
        "Content-Type": content_type,
        "Content-Disposition": f'{disposition}; filename="{filename}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
    }


def _asset_id(value: str) -> int | None:
    return (
        int(value) if value.isascii() and value.isdigit() and len(value) <= 10 and 1 <= int(value) <= MAX_ID else None
    )


@dataclass(frozen=True)
class _File:
    data: bytes
    content_type: str
    filename: str
    kind: str


@dataclass(frozen=True)
class NewsroomRoutes:
    """The kit routes, bound to one runtime, token reader and template set."""

    runtime: Runtime
    tokens: Tokens
    templates: Jinja2Templates

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route(
            "/kit/{token}/{asset_id}/{filename}", self.kit_file, methods=["GET", "HEAD"], name="kit_file"
        )
        return router

    def kit_file(self, request: Request, token: str, asset_id: str, filename: str) -> Response:
        """A file of the press kit through a delivery's link; a GET is recorded."""
        delivery_id = self.tokens.read_kit(token)
        wanted = _asset_id(asset_id)
        if delivery_id is None or wanted is None:
            return self.not_found(request)
        try:
            with transaction(self.runtime.sessions) as session:
                delivery = asset_store.kit_delivery(session, delivery_id)
                if delivery is None:
                    return self.not_found(request)
                asset = asset_store.get_asset(session, delivery.release_id, wanted)
                found = _File(b"", asset.content_type, asset.filename, asset.kind)
                key = asset.storage_key
                if request.method == "GET":
                    asset_store.record_download(session, delivery_id, asset.filename, self.runtime.clock())
            data = storage_for(self.runtime.settings).get(key)
        except NotFoundError:
            return self.not_found(request)
        return self.file_response(_File(data, found.content_type, found.filename, found.kind))

    # -- helpers --

    @staticmethod
    def file_response(file: _File) -> Response:
        headers = {
            **asset_headers(file.content_type, file.filename, kind=file.kind),
            "Cache-Control": "private, no-store",
        }
        return Response(file.data, headers=headers)

    def not_found(self, request: Request) -> Response:
        """The public 404 page (the same as for a bad unsubscribe token)."""
        return self.templates.TemplateResponse(request, "not_found.html", {}, status_code=404, headers=PUBLIC_HEADERS)
