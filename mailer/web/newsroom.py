"""The public newsroom and press-kit routes.

* ``/newsroom/{client}``: the client's published releases; ``/newsroom/{client}/feed.atom``
  the same as an Atom feed (RFC 4287); ``/newsroom/{client}/{release}``: one release's page
  (``?t=TOKEN``: a recipient's "View online" link, which also opens it before the
  embargo lifts); ``/newsroom/{client}/{release}/assets/{id}/{name}``: its kit files
  (``?k=`` the release's token, ``?t=`` a recipient's, or none once public). Who may see
  what: :mod:`mailer.releases.newsroom`. Indexable unless the client chose ``noindex``
  (and never while embargoed).
* ``/kit/{token}/{asset}/{name}``: a delivery's kit links, below.

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

from mailer.domain.errors import MailerError, NotFoundError
from mailer.domain.states import MAX_ID
from mailer.message.tokens import Tokens
from mailer.releases.newsroom import PageRenderer, asset_visible, client_newsroom
from mailer.releases.storage import storage_for
from mailer.runtime import Runtime
from mailer.store import assets as asset_store
from mailer.store.db import transaction
from mailer.web.public import PUBLIC_HEADERS

#: Newsroom pages: our own images, the https images a release body shows (issue 16), inline
#: styles, nothing else; no forms, no frames.
NEWSROOM_CSP = (
    "default-src 'none'; img-src 'self' https:; style-src 'unsafe-inline'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

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
    pages: PageRenderer

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        get = ["GET", "HEAD"]
        router.add_api_route("/kit/{token}/{asset_id}/{filename}", self.kit_file, methods=get, name="kit_file")
        router.add_api_route("/newsroom/{client}", self.index, methods=get, name="newsroom")
        router.add_api_route("/newsroom/{client}/feed.atom", self.feed, methods=get, name="newsroom_feed")
        router.add_api_route("/newsroom/{client}/{release}", self.release_page, methods=get, name="newsroom_release")
        router.add_api_route(
            "/newsroom/{client}/{release}/assets/{asset_id}/{filename}",
            self.release_file,
            methods=get,
            name="newsroom_file",
        )
        return router

    # -- the newsroom --

    def _headers(self, *, noindex: bool, private: bool) -> dict[str, str]:
        headers = {
            "Content-Security-Policy": NEWSROOM_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer" if private else "strict-origin-when-cross-origin",
            "Cache-Control": "private, no-store" if private else "public, max-age=300",
        }
        if noindex:
            headers["X-Robots-Tag"] = "noindex, nofollow"
        return headers

    def index(self, request: Request, client: str) -> Response:
        """The client's newsroom: its published releases, newest first."""
        with transaction(self.runtime.sessions) as session:
            newsroom = client_newsroom(session, client, now=self.runtime.clock())
        if newsroom is None:
            return self.not_found(request)
        context = {"newsroom": newsroom, "noindex": newsroom.noindex}
        headers = self._headers(noindex=newsroom.noindex, private=False)
        return self.templates.TemplateResponse(request, "newsroom/index.html", context, headers=headers)

    def feed(self, request: Request, client: str) -> Response:
        """The client's published releases as an Atom feed."""
        with transaction(self.runtime.sessions) as session:
            newsroom = client_newsroom(session, client, now=self.runtime.clock())
        if newsroom is None:
            return self.not_found(request)
        latest = max((r.published_at for r in newsroom.releases), default=self.runtime.clock())
        context = {
            "newsroom": newsroom,
            "site": self.runtime.settings.web.base_url.rstrip("/"),
            "updated": latest.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        headers = self._headers(noindex=newsroom.noindex, private=False)
        return self.templates.TemplateResponse(
            request, "newsroom/feed.xml", context, headers=headers, media_type="application/atom+xml"
        )

    def release_page(self, request: Request, client: str, release: str, t: str | None = None) -> Response:
        """One release's page: public once out and lifted; before the lift only with a
        token of one of its deliveries (``?t=``, the message's "View online" link)."""
        release_id = _asset_id(release)
        if release_id is None:
            return self.not_found(request)
        recipient_of = self._recipient_of(t)
        try:
            with transaction(self.runtime.sessions) as session:
                page = self.pages.page(
                    session, client, release_id, now=self.runtime.clock(), kit_token=t, recipient_of=recipient_of
                )
        except MailerError:
            return self.not_found(request)
        if page is None:
            return self.not_found(request)
        private = page.embargo is not None
        context = {"newsroom": page.client, "page": page, "noindex": page.noindex}
        headers = self._headers(noindex=page.noindex, private=private or t is not None)
        return self.templates.TemplateResponse(request, "newsroom/release.html", context, headers=headers)

    def release_file(
        self,
        request: Request,
        client: str,
        release: str,
        asset_id: str,
        filename: str,
        k: str | None = None,
        t: str | None = None,
    ) -> Response:
        """A kit file from the newsroom (shown images, the page's links); records nothing."""
        release_id, wanted = _asset_id(release), _asset_id(asset_id)
        if release_id is None or wanted is None:
            return self.not_found(request)
        with transaction(self.runtime.sessions) as session:
            found = asset_visible(
                session,
                client,
                release_id,
                wanted,
                now=self.runtime.clock(),
                release_token_of=self.tokens.read_release_kit(k) if k else None,
                recipient_of=self._recipient_of(t),
            )
        if found is None:
            return self.not_found(request)
        key, content_type, name, kind = found
        try:
            data = storage_for(self.runtime.settings).get(key)
        except NotFoundError:
            return self.not_found(request)
        response = self.file_response(_File(data, content_type, name, kind))
        if k or t:
            response.headers["Cache-Control"] = "private, max-age=3600"
        else:
            response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    def _recipient_of(self, token: str | None) -> int | None:
        """The release of the delivery a kit token names (None for no or a bad token)."""
        delivery_id = self.tokens.read_kit(token) if token else None
        if delivery_id is None:
            return None
        with transaction(self.runtime.sessions) as session:
            delivery = asset_store.kit_delivery(session, delivery_id)
        return delivery.release_id if delivery is not None else None

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
