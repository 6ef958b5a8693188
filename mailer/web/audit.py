"""The audit log in the web app.

:class:`AuditContext` (ASGI middleware, inside the session middleware) sets the client
address of each request for :func:`mailer.store.audit.record` and records every CSV export a
signed-in user downloads (any ``GET *.csv`` answered 200). Sign-ins and password changes
are recorded by :func:`record_web`, called from the account pages. The admins' page is
:mod:`mailer.web.admin.audit`.
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.accounts.users import StaffUser
from mailer.runtime import Runtime
from mailer.store import audit
from mailer.store.db import transaction
from mailer.web.limits import client_ip, parse_networks


def record_web(runtime: Runtime, *, actor: str, action: str, target: str | None = None, ip: str | None = None) -> None:
    """Writes: one audit entry in a transaction of its own (blocking: from a thread)."""
    with transaction(runtime.sessions) as session:
        audit.record(session, actor=actor, action=action, target=target, ip=ip, now=runtime.clock())


class AuditContext:
    """ASGI middleware: :data:`mailer.store.audit.REQUEST_IP` for the request, and an
    ``export`` entry for every CSV a signed-in user downloads."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.trusted = parse_networks(runtime.settings.web.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ip = client_ip(Request(scope), self.trusted)
        token = audit.REQUEST_IP.set(ip)
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            audit.REQUEST_IP.reset(token)
        user: StaffUser | None = scope.get("mailer.user")
        if scope["method"] == "GET" and scope["path"].endswith(".csv") and status == 200 and user is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            await run_in_threadpool(record_web, self.runtime, actor=user.email, action="export", target=target, ip=ip)
