"""The dashboard: releases due in the next 24 hours, sending now (live), recent bounces
and unsubscribes."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request
from fastapi.responses import Response

from mailer.domain.states import SuppressionReason
from mailer.store.ledger import bounces, dashboard, suppressions
from mailer.web.staff.view import CurrentUser, StaffView


class DashboardPages:
    """``/`` and its live fragment."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def dashboard(self, request: Request, user: CurrentUser) -> Response:
        """Releases due in the next 24 hours, sending now, recent bounces and unsubscribes."""
        now = self.view.runtime.clock()
        with self.view.read() as session:
            context = {
                "due": dashboard.releases_due(session, now=now, within=timedelta(hours=24)),
                "sending": dashboard.sending_now(session),
                "bounces": bounces.bounces(session, limit=10).rows,
                "unsubscribes": suppressions.recent_suppressions(session, [SuppressionReason.UNSUBSCRIBED], limit=10),
                "now": now,
            }
        return self.view.page(request, "staff/dashboard.html", context, user=user)

    def sending_fragment(self, request: Request, user: CurrentUser) -> Response:
        """The dashboard's live part (htmx polls it)."""
        with self.view.read() as session:
            sending = dashboard.sending_now(session)
        return self.view.page(request, "staff/_sending.html", {"sending": sending}, user=user)
