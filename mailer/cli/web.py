"""``mailer web``: serve the staff UI, the JSON API and the public unsubscribe pages with uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mailer.cli.common import STATE, err
from mailer.ops.logs import configure_logging, uvicorn_log_config


def register(app: typer.Typer) -> None:
    """Add ``mailer web`` to the root app."""
    app.command("web")(web)


def web(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: web.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: web.port).")] = None,
) -> None:
    """Serve the staff UI (/), the JSON API (/api) and the unsubscribe pages (/u/TOKEN).

    Put it behind TLS at web.base_url. Staff sign in with accounts from `mailer users add`.
    """
    import uvicorn

    from mailer.web import create_app

    settings = STATE.settings
    app = create_app(settings)
    bind_host = host or settings.web.host
    bind_port = port or settings.web.port
    err.print(f"serving on http://{bind_host}:{bind_port} (public URL {settings.web.base_url})", highlight=False)
    # The app reads X-Forwarded-For itself, and only from web.trusted_proxies: uvicorn's
    # own handling would believe any local peer.
    configure_logging(settings.log)
    logging.getLogger("uvicorn").setLevel(logging.INFO)
    uvicorn.run(
        app,
        host=bind_host,
        port=bind_port,
        log_level="info",
        proxy_headers=False,
        log_config=uvicorn_log_config(settings.log),
    )
