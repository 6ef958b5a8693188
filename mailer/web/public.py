"""Public routes: the unsubscribe page and RFC 8058 one-click unsubscribe.

``GET /u/{token}`` (and HEAD) only reads: mail security scanners and link previewers
fetch every URL in a message, so fetching the page must never unsubscribe anyone.
``POST /u/{token}`` acts, and is what mail clients send for one-click (RFC 8058 3.1:
``List-Unsubscribe=One-Click`` as ``application/x-www-form-urlencoded`` or
``multipart/form-data``, no cookies, no other context). The suppression is committed
before the answer; the answer is 200 with a page, never a redirect (RFC 8058 3.2 lets a
mail client treat anything else as failure). Unsubscribes are written by the web
process's one writer (:mod:`mailer.web.oneclick`), many to a transaction. No cookie,
session or CSRF token is used: the signed token in the URL is the whole credential.

Any token that does not lead to a delivery — malformed, tampered, signed with a foreign
or rotated-out key, or for a delivery that no longer exists — gets the same 404 page,
byte for byte, so the answer tells nothing about why.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from mailer.audience import unsubscribes
from mailer.audience.unsubscribes import TopicsSaved, UnsubscribeChoice, UnsubscribePage
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.web.oneclick import UnsubscribeWriter

#: Headers on every public page. The token in the URL is a credential: no Referer may
#: carry it away, no cache keep the page, no frame show it, no search engine list it.
PUBLIC_HEADERS = {
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

#: Source recorded on suppressions made from the page and by one-click.
SOURCE_PAGE = "preference page"
SOURCE_ONE_CLICK = "one-click"


@dataclass(frozen=True)
class PublicRoutes:
    """The unsubscribe endpoints, bound to one runtime, token reader, template set and
    unsubscribe writer."""

    runtime: Runtime
    tokens: Tokens
    templates: Jinja2Templates
    writer: UnsubscribeWriter

    def router(self) -> APIRouter:
        """An APIRouter with ``GET``/``HEAD``/``POST /u/{token}``."""
        router = APIRouter()
        # POST first: routes are tried in order, and a path that matches with another
        # method is only a partial match, after which every route of the app is tried
        # (a one-click spent ~12% of the web process's time there, issue 20)
        router.add_api_route("/u/{token}", self.act, methods=["POST"], include_in_schema=False, name="unsubscribe_post")
        router.add_api_route(
            "/u/{token}", self.show, methods=["GET", "HEAD"], include_in_schema=False, name="unsubscribe_page"
        )
        return router

    # -- routes --

    def show(self, request: Request, token: str) -> Response:
        """The page: who is unsubscribing, from which client, and the choices. Reads only."""
        page = self._page(token)
        if page is None:
            return self._not_found(request)
        return self.templates.TemplateResponse(request, "unsubscribe.html", {"page": page}, headers=PUBLIC_HEADERS)

    async def act(self, request: Request, token: str) -> Response:
        """Unsubscribe: ``choice=topics`` with ``keep=NAME`` fields saves topic choices
        (:func:`mailer.audience.unsubscribes.set_topics`); ``choice=all`` (the page's second button)
        suppresses for every client; ``choice=client``, RFC 8058 ``List-Unsubscribe=One-Click``, or a POST with
        neither, suppresses for this release's client (see :func:`mailer.audience.unsubscribes.unsubscribe`).
        A POST is an explicit request to stop, so an unknown body errs on the side of
        stopping rather than refusing."""
        delivery_id = self.tokens.read_unsubscribe(token)
        if delivery_id is None:
            return self._not_found(request)
        form = await request.form()
        raw_choice = form.get("choice")
        if raw_choice == "topics":
            keep = {v for v in form.getlist("keep") if isinstance(v, str)}
            await form.close()
            saved = await run_in_threadpool(self._set_topics, delivery_id, keep)
            if saved is None:
                return self._not_found(request)
            return self.templates.TemplateResponse(
                request, "preferences_saved.html", {"saved": saved}, headers=PUBLIC_HEADERS
            )
        if isinstance(raw_choice, str) and raw_choice in ("client", "all"):
            choice, source = UnsubscribeChoice(raw_choice), SOURCE_PAGE
        else:
            choice, source = UnsubscribeChoice.CLIENT, SOURCE_ONE_CLICK
        await form.close()
        # Returns after the commit: the suppression is recorded before the journalist (or
        # their mail client) sees the answer.
        result = await self.writer.unsubscribe(delivery_id, choice, source=source)
        if result is None:
            return self._not_found(request)
        return self.templates.TemplateResponse(request, "unsubscribed.html", {"result": result}, headers=PUBLIC_HEADERS)

    # -- helpers --

    def _page(self, token: str) -> UnsubscribePage | None:
        delivery_id = self.tokens.read_unsubscribe(token)
        if delivery_id is None:
            return None
        with transaction(self.runtime.sessions) as session:
            # A read: on SQLite a deferred BEGIN, so a flood of scanner fetches never
            # queues behind (or blocks) the workers' writes.
            session.connection(execution_options={"sqlite_deferred": True})
            return unsubscribes.unsubscribe_page(session, delivery_id)

    def _set_topics(self, delivery_id: int, keep: set[str]) -> TopicsSaved | None:
        with transaction(self.runtime.sessions) as session:
            return unsubscribes.set_topics(session, delivery_id, keep, now=self.runtime.clock())

    def _not_found(self, request: Request) -> Response:
        return self.templates.TemplateResponse(request, "not_found.html", {}, status_code=404, headers=PUBLIC_HEADERS)
