"""``/admin/webhooks``: admins register endpoints (URL and event types), disable or
enable them, and read the delivery log (:mod:`mailer.ops.webhooks`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import Role
from mailer.ops import webhooks
from mailer.store import webhooks as webhook_store
from mailer.store.db import transaction
from mailer.web.staff.view import CurrentUser, StaffView

#: rows of the delivery log on the page
LOG_ROWS = 100


class WebhookPages:
    """``GET /admin/webhooks``, ``POST /admin/webhooks`` (add) and
    ``POST /admin/webhooks/{webhook_id}/{action}`` (disable, enable, retry)."""

    def __init__(self, view: StaffView) -> None:
        self.view = view
        self.runtime = view.runtime

    def _forbidden(self, request: Request, user: CurrentUser) -> Response:
        return self.view.page(request, "staff/forbidden.html", {"action": "webhooks"}, user=user, status_code=403)

    def webhooks_page(self, request: Request, user: CurrentUser) -> Response:
        """Endpoints, the form to add one, and the delivery log."""
        if user.role is not Role.ADMIN:
            return self._forbidden(request, user)
        return self._page(request, user, {})

    def _page(self, request: Request, user: CurrentUser, extra: dict[str, object], status_code: int = 200) -> Response:
        with self.view.read() as session:
            endpoints = webhook_store.endpoints(session)
            log = webhook_store.outbox(session, limit=LOG_ROWS)
        context: dict[str, object] = {
            "endpoints": endpoints,
            "log": log,
            "event_types": webhook_store.EVENT_TYPES,
            "secret": None,
            "form": {"url": "", "events": []},
        }
        return self.view.page(request, "staff/webhooks.html", {**context, **extra}, user=user, status_code=status_code)

    async def add_webhook(
        self,
        request: Request,
        user: CurrentUser,
        url: Annotated[str, Form(max_length=2000)] = "",
        events: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        """Register an endpoint; the page shows its signing secret once."""
        if user.role is not Role.ADMIN:
            return self._forbidden(request, user)
        chosen = [e for e in events or [] if "\x00" not in e]

        def add() -> webhooks.Registered:
            with transaction(self.runtime.sessions) as session:
                return webhooks.register(session, url, chosen, actor=user.email, now=self.runtime.clock())

        try:
            made = await run_in_threadpool(add)
        except InputError as exc:
            form = {"url": url, "events": chosen}
            return await run_in_threadpool(self._page, request, user, {"error": str(exc), "form": form}, 422)
        return await run_in_threadpool(self._page, request, user, {"secret": made.secret, "added": made.id})

    def act(self, request: Request, user: CurrentUser, webhook_id: int, action: str) -> Response:
        """Disable, enable or retry the failed events of one endpoint."""
        if user.role is not Role.ADMIN:
            return self._forbidden(request, user)
        try:
            with transaction(self.runtime.sessions) as session:
                now = self.runtime.clock()
                if action in ("disable", "enable"):
                    webhooks.set_active(session, webhook_id, action == "enable", actor=user.email, now=now)
                    self.view.flash(request, "ok", f"webhook {webhook_id} {action}d")
                elif action == "retry":
                    count = webhook_store.retry_failed(session, webhook_id, now=now)
                    self.view.flash(request, "ok", f"{count} event(s) queued again for webhook {webhook_id}")
                else:
                    return self.view.not_found(request, user, f"no action {action!r}")
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        return RedirectResponse("/admin/webhooks", status_code=303)
