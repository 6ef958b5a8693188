"""Suppressions by hand (admins): add an address or a domain form with a reason, lift one
(a bounce or complaint only with a re-consent note), import a CSV — the same functions as
``mailer suppressions add|remove|import``. Every change is logged with who and why."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from mailer.accounts.permits import Action, permits
from mailer.audience import suppressions
from mailer.audience.suppression_import import import_suppressions
from mailer.domain.errors import InputError, MailerError
from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason
from mailer.store import suppressions as suppression_store
from mailer.store.db import transaction
from mailer.web.staff.view import CurrentUser, StaffView

Short = Annotated[str, Form(max_length=320)]
Note = Annotated[str, Form(max_length=2000)]
#: Largest suppression file accepted from the browser.
MAX_UPLOAD = 20 * 1024 * 1024
#: Reasons staff may choose when adding by hand.
HAND_REASONS = ("manual", "unsubscribed", "complaint", "hard_bounce")


def _reason(value: str) -> SuppressionReason:
    if value not in HAND_REASONS:
        raise InputError(f"reason: one of {', '.join(HAND_REASONS)}")
    return SuppressionReason(value)


class SuppressionAdminPages:
    """``POST /suppressions/add``, ``/suppressions/{id}/lift``, ``POST /suppressions/import``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def add(
        self,
        request: Request,
        user: CurrentUser,
        target: Short = "",
        reason: Short = "manual",
        scope: Short = GLOBAL_SCOPE,
        note: Note = "",
    ) -> Response:
        """Suppress an address, @domain or *.domain in a scope."""
        if not permits(user, Action.SUPPRESS):
            return self.view.forbidden(request, user, Action.SUPPRESS)
        try:
            with transaction(self.view.runtime.sessions) as session:
                added = suppressions.suppress(
                    session,
                    target,
                    reason=_reason(reason),
                    source=f"staff page by {user.email}",
                    now=self.view.runtime.clock(),
                    scope=scope.strip() or GLOBAL_SCOPE,
                    actor=user.email,
                    note=note.strip() or None,
                )
        except MailerError as exc:
            self.view.flash(request, "error", str(exc))
        else:
            shown = target.strip()
            self.view.flash(request, "ok", f"suppressed {shown}" if added else f"{shown} was already suppressed there")
        return RedirectResponse("/suppressions", status_code=303)

    def lift_page(self, request: Request, suppression_id: int, user: CurrentUser) -> Response:
        """The form to lift one suppression: a reason, and a re-consent note when it is a bounce or complaint."""
        if not permits(user, Action.SUPPRESS):
            return self.view.forbidden(request, user, Action.SUPPRESS)
        with self.view.read() as session:
            row = suppression_store.suppression_by_id(session, suppression_id)
            found = (
                None if row is None else {"id": row.id, "email": row.email, "scope": row.scope, "reason": row.reason}
            )
        if found is None or found["email"] is None:
            return self.view.not_found(request, user, "no such suppression (or an erased address, which stays)")
        needs = SuppressionReason(str(found["reason"])) in suppressions.NEEDS_RECONSENT
        return self.view.page(request, "staff/suppression_lift.html", {"s": found, "needs_reconsent": needs}, user=user)

    def lift(
        self,
        request: Request,
        suppression_id: int,
        user: CurrentUser,
        reason: Note = "",
        reconsent: Note = "",
    ) -> Response:
        """Lift one suppression (logged with who and why)."""
        if not permits(user, Action.SUPPRESS):
            return self.view.forbidden(request, user, Action.SUPPRESS)
        try:
            with transaction(self.view.runtime.sessions) as session:
                row = suppression_store.suppression_by_id(session, suppression_id)
                if row is None or row.email is None:
                    return self.view.not_found(request, user, "no such suppression")
                email, scope = row.email, row.scope
                suppressions.lift(
                    session,
                    email,
                    scope=scope,
                    reason=reason,
                    actor=user.email,
                    now=self.view.runtime.clock(),
                    reconsent=reconsent or None,
                )
        except MailerError as exc:
            self.view.flash(request, "error", str(exc))
            return RedirectResponse(f"/suppressions/{suppression_id}/lift", status_code=303)
        self.view.flash(request, "ok", f"lifted the suppression of {email} ({scope})")
        return RedirectResponse("/suppressions", status_code=303)

    async def import_file(
        self,
        request: Request,
        user: CurrentUser,
        file: UploadFile,
        reason: Annotated[str, Form(max_length=32)] = "manual",
    ) -> Response:
        """Suppress every address or domain form of an uploaded CSV; the counts and the first
        rejected lines are shown on the suppressions page."""
        if not permits(user, Action.SUPPRESS):
            return self.view.forbidden(request, user, Action.SUPPRESS)
        data = await file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            self.view.flash(request, "error", f"the file is larger than {MAX_UPLOAD // 1024 // 1024} MB")
            return self.view.go(request, "/suppressions")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "suppressions.csv"
            path.write_bytes(data)
            try:
                with transaction(self.view.runtime.sessions) as session:
                    result = import_suppressions(
                        session, path, reason=_reason(reason), actor=user.email, now=self.view.runtime.clock()
                    )
            except MailerError as exc:
                self.view.flash(request, "error", f"{file.filename}: {exc}")
                return self.view.go(request, "/suppressions")
        name = file.filename or "upload"
        self.view.flash(
            request,
            "error" if result.rejected else "ok",
            f"{name}: {result.added} suppressed, {result.existing} already were, {len(result.rejected)} rejected",
        )
        for line, why in result.rejected[:20]:
            self.view.flash(request, "error", f"{name}, line {line}: {why}")
        return self.view.go(request, "/suppressions")
