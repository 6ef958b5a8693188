"""``/admin/audit`` and ``/admin/audit.csv``: the audit log of staff actions, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from mailer.domain.states import Role
from mailer.store import audit
from mailer.web.staff.export import csv_response, csv_rows
from mailer.web.staff.forms import query_string
from mailer.web.staff.view import PAGE_SIZE, CurrentUser, StaffView


class AuditPages:
    """``/admin/audit`` (newest first, by actor or action) and its CSV, for admins only."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def audit_page(
        self,
        request: Request,
        user: CurrentUser,
        actor: Annotated[str | None, Query(max_length=320)] = None,
        action: Annotated[str | None, Query(max_length=40)] = None,
        after: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
        before: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
    ) -> Response:
        """The audit log (admins)."""
        if user.role is not Role.ADMIN:
            return self.view.page(request, "staff/forbidden.html", {"action": "audit"}, user=user, status_code=403)
        actor, action = _clean(actor), _clean(action)
        with self.view.read() as session:
            page = audit.audit_page(session, actor=actor, action=action, after=after, before=before, limit=PAGE_SIZE)
        form = {"actor": actor or "", "action": action or ""}
        context = {"page": page, "form": form, "query": query_string(form)}
        return self.view.page(request, "staff/audit.html", context, user=user)

    def audit_csv(
        self,
        request: Request,
        user: CurrentUser,
        actor: Annotated[str | None, Query(max_length=320)] = None,
        action: Annotated[str | None, Query(max_length=40)] = None,
    ) -> Response:
        """The filtered audit log as CSV (admins; the download is itself audited)."""
        if user.role is not Role.ADMIN:
            return self.view.page(request, "staff/forbidden.html", {"action": "audit"}, user=user, status_code=403)
        actor, action = _clean(actor), _clean(action)
        return csv_response(
            "audit.csv",
            csv_rows(
                self.view.runtime.sessions,
                lambda s, after: audit.audit_page(s, actor=actor, action=action, after=after, limit=500),
                ("id", "at", "actor", "action", "target", "ip", "detail"),
                lambda e: (e.id, e.at, e.actor, e.action, e.target, e.ip, e.detail),
            ),
        )


def _clean(value: str | None) -> str | None:
    return value.strip() if value and value.strip() and "\x00" not in value else None
