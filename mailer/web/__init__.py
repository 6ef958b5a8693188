"""The web app: public unsubscribe routes, the staff UI (:mod:`mailer.web.staff`) and the
JSON API under ``/api`` (:mod:`mailer.web.api`; its OpenAPI at ``/api/openapi.json``).

``create_app(settings)`` is the factory (``mailer web`` serves it with uvicorn). It opens
its own :class:`~mailer.runtime.Runtime`, so a bad database URL or an old schema stops the
process at start instead of at the first journalist's click; the runtime is closed when
the app shuts down (lifespan).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.config import Settings
from mailer.domain.when import format_in_zone
from mailer.message.tokens import Tokens
from mailer.ops.metrics import RequestLatency
from mailer.releases.newsroom import PageRenderer
from mailer.releases.plan import renderer_for
from mailer.runtime import Clock, Runtime, utc_now
from mailer.web import auth
from mailer.web.admin import admin_router
from mailer.web.api import api_router
from mailer.web.audit import AuditContext
from mailer.web.newsroom import NewsroomRoutes
from mailer.web.oneclick import UnsubscribeWriter
from mailer.web.ops import OpsRoutes
from mailer.web.paths import PathNotFound
from mailer.web.public import PublicRoutes
from mailer.web.staff import staff_router

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


#: Paths whose pages may be indexed: the public newsroom sets its own X-Robots-Tag
#: (``noindex`` where a client chose it, and while a release is embargoed).
INDEXABLE_PREFIXES = ("/newsroom/",)


class NoIndex:
    """ASGI middleware: ``X-Robots-Tag: noindex`` on every response, whatever route (or
    error) produced it, but the newsroom's (:data:`INDEXABLE_PREFIXES`). Nothing else this
    app serves belongs in a search index."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(INDEXABLE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-robots-tag"]
                headers.append((b"x-robots-tag", b"noindex, nofollow"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def templates() -> Jinja2Templates:
    """The page templates: autoescaped, and a missing variable is an error, not a blank.

    Loaded once (no ``auto_reload``): checking each template file's time on every render
    cost two ``stat`` calls a page, each a release of the GIL that the event loop then
    waits to get back (up to 5 ms while another thread runs; issue 20)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # times in a zone: {{ release.send_at | when(tz) }} (tz: the user's, else the firm's)
    env.filters["when"] = lambda at, zone=None: format_in_zone(at, zone) if at is not None else ""
    return Jinja2Templates(env=env)


def create_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    """Build the app for ``settings``; ``clock`` stamps suppressions and events.

    Raises :class:`~mailer.domain.errors.StoreError` when the database cannot be opened or its
    schema is not current.
    """
    runtime = Runtime.open(settings, clock=clock)
    tokens = Tokens.from_settings(settings)
    unsubscribes = UnsubscribeWriter(runtime)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            unsubscribes.close()
            runtime.close()

    # Only the API is documented (the pages and /u/ routes are left out of the schema);
    # no interactive docs: they would load scripts from a CDN.
    app = FastAPI(
        title="mailer API",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = runtime
    app.state.auth = auth.Auth(runtime)
    page_templates = templates()
    app.include_router(PublicRoutes(runtime, tokens, page_templates, unsubscribes).router())
    ops = OpsRoutes(runtime)
    app.include_router(ops.router())
    pages = PageRenderer(renderer_for(settings), settings)
    app.include_router(NewsroomRoutes(runtime, tokens, page_templates, pages).router())
    app.include_router(api_router(runtime))
    app.include_router(staff_router(runtime, page_templates))
    app.include_router(admin_router(runtime, page_templates))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    async def not_signed_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, auth.NotSignedIn)
        return RedirectResponse(f"/login?{urlencode({'next': exc.next_path})}", status_code=303)

    async def path_not_found(request: Request, exc: Exception) -> Response:
        # An id out of range or not a number names nothing: 404, as for a missing row.
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "not found"}, status_code=404)
        context: dict[str, Any] = {"user": None, "csrf_token": auth.csrf_token(request), "flash": [], "error": None}
        return page_templates.TemplateResponse(
            request, "staff/not_found.html", {**context, "what": "no such page"}, status_code=404
        )

    app.add_exception_handler(auth.NotSignedIn, not_signed_in)
    app.add_exception_handler(PathNotFound, path_not_found)
    # Inside the session middleware: sees the signed-in user of each request.
    app.add_middleware(AuditContext, runtime=runtime)
    auth.install(app, runtime)
    app.add_middleware(NoIndex)
    app.add_middleware(RequestLatency, histogram=ops.metrics.latency, routes=app.router.routes)
    return app
