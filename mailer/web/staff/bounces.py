"""Bounces, complaints and refusals, newest first, and their CSV export."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from mailer.store.ledger.bounces import BOUNCE_KINDS, bounces
from mailer.web.staff.export import csv_response, csv_rows
from mailer.web.staff.view import PAGE_SIZE, CurrentUser, StaffView


class BouncePages:
    """``/bounces`` and ``/bounces.csv``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def bounces_page(
        self,
        request: Request,
        user: CurrentUser,
        kind: str | None = None,
        after: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
        before: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
    ) -> Response:
        """Bounces, complaints and refusals, newest first."""
        chosen = kind if kind in BOUNCE_KINDS else None
        with self.view.read() as session:
            page = bounces(session, kind=chosen, after=after, before=before, limit=PAGE_SIZE)
        context = {"page": page, "kind": chosen or "", "kinds": BOUNCE_KINDS}
        return self.view.page(request, "staff/bounces.html", context, user=user)

    def bounces_csv(self, user: CurrentUser, kind: str | None = None) -> Response:
        """The bounce list (one kind or all) as CSV."""
        chosen = kind if kind in BOUNCE_KINDS else None
        header = ("id", "at", "kind", "code", "detail", "release", "email")
        return csv_response(
            "bounces.csv",
            csv_rows(
                self.view.runtime.sessions,
                lambda s, after: bounces(s, kind=chosen, after=after, limit=500),
                header,
                lambda r: (r.id, r.at, r.kind, r.code, r.detail, r.release_id, r.email),
            ),
        )
