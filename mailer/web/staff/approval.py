"""The approval page (issue 21): what an approver needs to decide, on one page.

The rendered message per segment (the sandboxed preview frames of
:mod:`mailer.web.staff.preview`), who each segment reaches now (count and sample names),
the send time in the firm's and the approver's zone, the embargo, the client's disclosure
and where it stands, the difference from the last approved version (the approval's
release-file snapshot), the comments; then Approve (never offered on one's own release:
the two-person rule, asked before the button is drawn) or Request changes (back to draft
with the note), or a comment. Every POST carries the CSRF token (middleware).
"""

from __future__ import annotations

import difflib
import logging
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from mailer.accounts.permits import Action, permits
from mailer.accounts.users import StaffUser
from mailer.domain.errors import InputError, MailerError, NotFoundError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.message import Renderer
from mailer.releases.approval import approve_release, request_changes, second_person_problem
from mailer.releases.audience import segment_audiences
from mailer.releases.release_text import release_file
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.db import transaction
from mailer.store.ledger.release_detail import release_detail
from mailer.web.staff.view import CurrentUser, StaffView

log = logging.getLogger("mailer.web.staff")


def approval_diff(previous: str | None, current: str) -> list[str]:
    """Unified diff lines from the last approved release file to the current one (empty
    when there was no approval before, or nothing changed)."""
    if previous is None:
        return []
    return list(
        difflib.unified_diff(previous.splitlines(), current.splitlines(), "last approved", "now", lineterm="", n=2)
    )


class ApprovalPages:
    """``/releases/{id}/approval``, its decisions and comments."""

    def __init__(self, view: StaffView, renderer: Renderer) -> None:
        self.view = view
        self.runtime = view.runtime
        self.renderer = renderer

    def _context(self, session: Session, release_id: int, user: StaffUser) -> dict[str, Any]:
        detail = release_detail(session, release_id)
        release = release_store.get_release(session, release_id)
        client = release_store.get_client_by_id(session, release.client_id)
        current = release_file(session, release_id)
        approvals = review_store.release_approvals(session, release_id)
        snapshots = [a.snapshot for a in approvals if a.snapshot]
        problem = second_person_problem(session, release, user.email)
        submitted = detail.status == ReleaseStatus.SUBMITTED.value
        may_decide = submitted and permits(user, Action.APPROVE)
        return {
            "release": detail,
            "client": client,
            "placement": (release.extra or {}).get("disclosure_placement") or "footer",
            "audiences": segment_audiences(session, release_id),
            "diff": approval_diff(snapshots[-1] if snapshots else None, current),
            "approved_before": bool(snapshots),
            "comments": review_store.release_comments(session, release_id),
            "may_approve": may_decide and problem is None,
            "may_request_changes": may_decide,
            "own_release": problem,
        }

    def approval_page(self, request: Request, release_id: int, user: CurrentUser) -> Response:
        """Everything the decision needs, and the buttons this user may press."""
        try:
            with self.view.read() as session:
                context = self._context(session, release_id, user)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        return self.view.page(request, "staff/approval.html", context, user=user)

    def decide(
        self,
        request: Request,
        release_id: int,
        decision: str,
        user: CurrentUser,
        note: Annotated[str, Form(max_length=10_000)] = "",
    ) -> Response:
        """Approve, request changes (with ``note``) or comment; 403 for a role that may not."""
        if decision not in ("approve", "request-changes", "comment"):
            return self.view.not_found(request, user, "no such decision")
        if decision != "comment" and not permits(user, Action.APPROVE):
            return self.view.forbidden(request, user, Action.APPROVE)
        rt, now = self.runtime, self.runtime.clock()
        try:
            with transaction(rt.sessions) as session:
                if decision == "approve":
                    result = approve_release(
                        session, release_id, approver=user.email, renderer=self.renderer, settings=rt.settings, now=now
                    )
                    message = f"refused: {result.refused}" if result.refused else "approved"
                elif decision == "request-changes":
                    request_changes(session, release_id, actor=user.email, note=note, settings=rt.settings, now=now)
                    message = "sent back to draft with your note"
                else:
                    if not note.strip() or "\x00" in note:
                        raise InputError("comment: write something")
                    release_store.get_release(session, release_id)
                    review_store.add_comment(
                        session, release_id, author=user.email, kind="comment", body=note.strip(), now=now
                    )
                    message = "comment added"
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except (WorkflowError, InputError, MailerError) as exc:
            code = 409 if isinstance(exc, WorkflowError) else 422
            with self.view.read() as session:
                context = self._context(session, release_id, user)
            context["error"] = str(exc)
            return self.view.page(request, "staff/approval.html", context, user=user, status_code=code)
        log.info("%s %s release %s: %s", user.email, decision, release_id, message)
        self.view.flash(request, "error" if message.startswith("refused") else "ok", message)
        target = f"/releases/{release_id}/approval" if decision == "comment" else f"/releases/{release_id}"
        return RedirectResponse(target, status_code=303)
