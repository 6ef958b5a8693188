"""Suppressions, newest first, by reason, scope or address, and their CSV export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from mailer.accounts.permits import Action, permits
from mailer.domain.states import SuppressionReason
from mailer.store.ledger.suppressions import suppressions
from mailer.web.staff.export import csv_response, csv_rows
from mailer.web.staff.forms import query_string
from mailer.web.staff.suppression_admin import HAND_REASONS
from mailer.web.staff.view import PAGE_SIZE, CurrentUser, StaffView


@dataclass(frozen=True)
class SuppressionFilters:
    """The list's filters from the query string; an unknown reason or a NUL is dropped."""

    reason: str | None
    scope: str | None
    email: str | None

    @classmethod
    def parse(cls, reason: str | None, scope: str | None, email: str | None) -> SuppressionFilters:
        return cls(
            reason=reason if reason in {r.value for r in SuppressionReason} else None,
            scope=scope.strip() if scope and scope.strip() and "\x00" not in scope else None,
            email=email.strip().lower() if email and email.strip() and "\x00" not in email else None,
        )


class SuppressionPages:
    """``/suppressions`` and ``/suppressions.csv``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def suppressions_page(
        self,
        request: Request,
        user: CurrentUser,
        reason: str | None = None,
        scope: Annotated[str | None, Query(max_length=64)] = None,
        email: Annotated[str | None, Query(max_length=320)] = None,
        after: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
        before: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
    ) -> Response:
        """Suppressions, newest first, by reason, scope or address."""
        filters = SuppressionFilters.parse(reason, scope, email)
        with self.view.read() as session:
            page = suppressions(
                session,
                reason=filters.reason,
                scope=filters.scope,
                email=filters.email,
                after=after,
                before=before,
                limit=PAGE_SIZE,
            )
        form = {"reason": filters.reason or "", "scope": filters.scope or "", "email": filters.email or ""}
        context = {
            "page": page,
            "form": form,
            "reasons": [r.value for r in SuppressionReason],
            "query": query_string(form),
            "can_suppress": permits(user, Action.SUPPRESS),
            "hand_reasons": HAND_REASONS,
        }
        return self.view.page(request, "staff/suppressions.html", context, user=user)

    def suppressions_csv(
        self,
        user: CurrentUser,
        reason: str | None = None,
        scope: Annotated[str | None, Query(max_length=64)] = None,
        email: Annotated[str | None, Query(max_length=320)] = None,
    ) -> Response:
        """The filtered suppression list as CSV."""
        filters = SuppressionFilters.parse(reason, scope, email)
        return csv_response(
            "suppressions.csv",
            csv_rows(
                self.view.runtime.sessions,
                lambda s, after: suppressions(
                    s, reason=filters.reason, scope=filters.scope, email=filters.email, after=after, limit=500
                ),
                ("id", "email", "scope", "reason", "source", "created_at"),
                lambda r: (r.id, r.email, r.scope, r.reason, r.source, r.created_at),
            ),
        )
