"""The release pages: list, detail (segments with counts, progress, chart, problems,
history), the live progress bar, and the actions.

Every state change is a POST reached from a confirmation page, carries the CSRF token
(checked by middleware, see :mod:`mailer.web.auth`), and answers with a redirect to the
release (303) and a one-line message. Which actions a page offers is the state machine's
answer (:func:`mailer.domain.states.allowed_actions`) filtered by the role
(:func:`mailer.accounts.permits.permits`); a refused one is 403 (role) or 409 (state),
with the reason on the release page.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from anyio import from_thread
from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from mailer.accounts.permits import Action, permits
from mailer.accounts.users import StaffUser
from mailer.domain import when
from mailer.domain.conversations import can_answer
from mailer.domain.errors import InputError, MailerError, NotFoundError, WorkflowError
from mailer.domain.states import (
    RETRYABLE_DELIVERY,
    DeliveryStatus,
    ReleaseAction,
    ReleaseStatus,
    allowed_actions,
)
from mailer.message import Renderer
from mailer.releases import cadence, holds, threads, workflow
from mailer.releases.approval import approve_release, second_person_problem, submit_release
from mailer.releases.audience import audience_size
from mailer.releases.embargo import release_embargo_text
from mailer.releases.proof import ProofResult, proof_transport, send_proof
from mailer.store import assets as asset_store
from mailer.store import releases as release_store
from mailer.store import replies as reply_store
from mailer.store.db import transaction
from mailer.store.ledger.dashboard import ReleaseProgress, release_progress
from mailer.store.ledger.release_detail import release_detail
from mailer.store.ledger.release_list import releases as release_page
from mailer.store.ledger.report import release_report, sent_per_minute
from mailer.web.staff.charts import status_parts, time_chart
from mailer.web.staff.view import PAGE_SIZE, CurrentUser, StaffView

log = logging.getLogger("mailer.web.staff")

#: Actions offered on a release page, in display order.
RELEASE_ACTIONS = (
    Action.SUBMIT,
    Action.APPROVE,
    Action.SCHEDULE,
    Action.PROOF,
    Action.PAUSE,
    Action.RESUME,
    Action.RETRY,
    Action.CANCEL,
    Action.CORRECT,
    Action.WITHDRAW,
    Action.LIFT_CAP,
)
#: Actions that answer the release with a new linked release (:mod:`mailer.releases.threads`).
ANSWERS = (Action.CORRECT, Action.WITHDRAW)
#: The delivery states the retry form offers (all of :data:`RETRYABLE_DELIVERY`), in
#: the states' own order.
RETRY_STATUSES = tuple(s for s in DeliveryStatus if s in RETRYABLE_DELIVERY)


def action_available(action: Action, status: ReleaseStatus, counts: dict[str, int]) -> bool:
    """True when the release's state lets ``action`` happen now (role aside): the state
    machine's :func:`allowed_actions`; a proof, for any release not cancelled."""
    if action is Action.PROOF:
        return status is not ReleaseStatus.CANCELLED
    if action in ANSWERS:
        return can_answer(status)
    if action is Action.LIFT_CAP:
        return status is not ReleaseStatus.CANCELLED and counts.get(DeliveryStatus.CAPPED.value, 0) > 0
    if action.value not in {a.value for a in ReleaseAction}:
        return False
    return ReleaseAction(action.value) in allowed_actions(status, counts)


class ReleasePages:
    """``/releases``, ``/releases/{id}``, its progress fragment, confirmations and actions."""

    def __init__(self, view: StaffView, renderer: Renderer) -> None:
        self.view = view
        self.runtime = view.runtime
        self.renderer = renderer

    def release_list(
        self,
        request: Request,
        user: CurrentUser,
        status: str | None = None,
        after: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
        before: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
    ) -> Response:
        """Releases, newest first, optionally one status."""
        chosen = status if status in {s.value for s in ReleaseStatus} else None
        with self.view.read() as session:
            page = release_page(session, status=chosen, after=after, before=before, limit=PAGE_SIZE)
        context = {"page": page, "status": chosen or "", "statuses": [s.value for s in ReleaseStatus]}
        return self.view.page(request, "staff/releases.html", context, user=user)

    def _detail_context(self, session: Session, release_id: int, user: StaffUser) -> dict[str, Any]:
        rule = partial(holds.effective_not_after, settings=self.runtime.settings)
        detail = release_detail(session, release_id, not_after=rule)
        report = release_report(session, release_id)
        status = ReleaseStatus(detail.status)
        own = second_person_problem(session, release_store.get_release(session, release_id), user.email)
        actions = [
            a.value
            for a in RELEASE_ACTIONS
            if action_available(a, status, report.counts)
            and permits(user, a, author=detail.author, status=detail.status)
            and not (a is Action.APPROVE and own is not None)  # no Approve button on one's own release
        ]
        return {
            "release": detail,
            "report": report,
            "progress": ReleaseProgress(detail.id, detail.title, detail.status, report.counts),
            "actions": actions,
            "chart": time_chart(sent_per_minute(session, release_id)),
            "parts": status_parts(report.counts),
            "problems": report.problems,
            "not_after": detail.not_after,
            "waiting": detail.waiting,
            "replies": reply_store.reply_counts(session, release_id),
            "audience": audience_size(session, release_id),
            "editable": ReleaseAction.EDIT in allowed_actions(status) and permits(user, Action.WRITE),
            "embargo": release_embargo_text(session, release_id),
            "assets": asset_store.release_assets(session, release_id),
            "downloaders": [d for d in asset_store.contacts_who_downloaded(session, release_id) if d.email][:50],
            "can_write": permits(user, Action.WRITE) and ReleaseAction.EDIT in allowed_actions(status),
        }

    def release_detail(self, request: Request, release_id: int, user: CurrentUser) -> Response:
        """One release: segments with counts and progress, chart, history, allowed actions."""
        try:
            with self.view.read() as session:
                context = self._detail_context(session, release_id, user)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        return self.view.page(request, "staff/release.html", context, user=user)

    def progress_fragment(self, request: Request, release_id: int, user: CurrentUser) -> Response:
        """A release's live progress bar (htmx polls it while it sends)."""
        with self.view.read() as session:
            progress = release_progress(session, release_id)
        if progress is None:
            return self.view.not_found(request, user, "no such release")
        return self.view.page(request, "staff/_progress.html", {"progress": progress}, user=user)

    def confirm(self, request: Request, release_id: int, action: str, user: CurrentUser) -> Response:
        """The confirmation step before an action: what will happen, and the form."""
        try:
            chosen = Action(action)
        except ValueError:
            return self.view.not_found(request, user, "no such action")
        try:
            with self.view.read() as session:
                context = self._detail_context(session, release_id, user)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        release = context["release"]
        if chosen not in RELEASE_ACTIONS or not permits(user, chosen, author=release.author, status=release.status):
            return self.view.forbidden(request, user, chosen)
        context["action"] = chosen.value
        context["retry_statuses"] = [s.value for s in RETRY_STATUSES]
        context["segment_slugs"] = [seg.slug for seg in release.segments]
        return self.view.page(request, "staff/confirm.html", context, user=user)

    def act(
        self,
        request: Request,
        release_id: int,
        action: str,
        user: CurrentUser,
        send_at: Annotated[str, Form(max_length=80)] = "",
        now: Annotated[str, Form(max_length=8)] = "",
        statuses: Annotated[list[str] | None, Form()] = None,
        segment: Annotated[str, Form(max_length=64)] = "",
        text: Annotated[str, Form(max_length=500_000)] = "",
    ) -> Response:
        """Do a confirmed action; 403 when the role may not, 409 when the state does not allow it."""
        try:
            chosen = Action(action)
        except ValueError:
            return self.view.not_found(request, user, "no such action")
        if chosen not in RELEASE_ACTIONS:
            return self.view.forbidden(request, user, chosen)
        try:
            with self.view.read() as session:
                release = release_store.get_release(session, release_id)
                author, status = release.author, release.status
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        if not permits(user, chosen, author=author, status=status):
            log.warning("%s (%s) refused %s on release %s", user.email, user.role.value, chosen.value, release_id)
            return self.view.forbidden(request, user, chosen)
        target = release_id
        try:
            if chosen in ANSWERS:
                target, message = self._answer(chosen, release_id, user, text)
            else:
                message = self._perform(
                    chosen, release_id, user, send_at=send_at, statuses=statuses, segment=segment, send_now=now == "1"
                )
        except (WorkflowError, InputError, MailerError) as exc:
            code = 409 if isinstance(exc, WorkflowError) else 422
            with self.view.read() as session:
                context = self._detail_context(session, release_id, user)
            context["error"] = str(exc)
            return self.view.page(request, "staff/release.html", context, user=user, status_code=code)
        self.view.flash(request, "ok" if not message.startswith("refused") else "error", message)
        log.info("%s %s release %s: %s", user.email, chosen.value, release_id, message)
        return RedirectResponse(f"/releases/{target}", status_code=303)

    def _answer(self, action: Action, release_id: int, user: StaffUser, text: str) -> tuple[int, str]:
        """A correction (``text``: the release file) or withdrawal (``text``: the note) of the
        release; returns the new release's id and the line to show."""
        rt = self.runtime
        verb = threads.correct if action is Action.CORRECT else threads.withdraw
        with transaction(rt.sessions) as session:
            release = verb(
                session,
                release_id,
                text,
                author=user.email,
                renderer=self.renderer,
                settings=rt.settings,
                now=rt.clock(),
            )
            new_id = release.id
        return new_id, f"{release.kind} of release {release_id} created as a draft: submit it for approval"

    def _perform(
        self,
        action: Action,
        release_id: int,
        user: StaffUser,
        *,
        send_at: str,
        statuses: list[str] | None,
        segment: str,
        send_now: bool = False,
    ) -> str:
        """Run one action in its own transaction; returns the line to show."""
        rt, now, actor = self.runtime, self.runtime.clock(), user.email
        if action is Action.PROOF:
            # this route runs in a worker thread: the proof's SMTP exchange runs on the server's loop
            result = from_thread.run(self._send_proof, release_id, user.email, segment or None, now)
            state = "sent" if result.sent else "refused by the server"
            return f"proof of {result.segment_slug} to {result.to_address}: {state} ({result.reply})"
        with transaction(rt.sessions) as session:
            if action is Action.SUBMIT:
                report = submit_release(
                    session, release_id, actor=actor, renderer=self.renderer, settings=rt.settings, now=now
                )
                warnings = "".join(f"; warning: {w}" for w in report.warnings)
                return f"submitted for approval{warnings}"
            if action is Action.APPROVE:
                approval = approve_release(
                    session, release_id, approver=actor, renderer=self.renderer, settings=rt.settings, now=now
                )
                # The refusal (back to draft) is committed by leaving this block normally.
                if approval.refused is not None:
                    return f"refused: {approval.refused}"
                return f"approved (content {approval.content_hash[:12]})"
            if action is Action.SCHEDULE:
                before = release_store.get_release(session, release_id).status
                if send_now:
                    release = workflow.schedule(session, release_id, at=None, send_now=True, actor=actor, now=now)
                    done = f"sending now to {audience_size(session, release_id)} contacts"
                else:
                    if not send_at.strip():
                        raise InputError("send_at: give a date and time")
                    at = when.parse_when(send_at, "send_at", default_zone=self.view.zone(user))
                    release = workflow.schedule(session, release_id, at=at, actor=actor, now=now)
                    done = f"scheduled for {when.format_in_zone(at, self.view.zone(user))}"
                if before == ReleaseStatus.APPROVED.value and release.status == ReleaseStatus.SUBMITTED.value:
                    done += "; earlier than the approved time, so it needs approval again"
                return done
            if action is Action.PAUSE:
                workflow.pause(session, release_id, actor=actor, now=now)
                return "paused: no new messages are claimed"
            if action is Action.RESUME:
                workflow.resume(session, release_id, actor=actor, now=now)
                return "resumed"
            if action is Action.RETRY:
                chosen = [DeliveryStatus(s) for s in statuses or [] if s in {r.value for r in RETRYABLE_DELIVERY}]
                count = workflow.retry(session, release_id, chosen, actor=actor, now=now)
                return f"{count} deliveries queued again"
            if action is Action.LIFT_CAP:
                count = cadence.lift_cap(session, release_id, actor=actor, now=now)
                return f"cadence cap lifted: {count} capped deliveries queued again"
            if action is Action.CANCEL:
                cancelled = workflow.cancel(session, release_id, actor=actor, now=now)
                if cancelled.was_sending:
                    return f"cancelled; {cancelled.pending} pending deliveries will not be sent"
                return "cancelled"
        raise InputError(f"unknown action {action.value}")

    async def _send_proof(self, release_id: int, to_address: str, segment: str | None, now: datetime) -> ProofResult:
        """Send one proof through a connection of its own."""
        async with proof_transport(self.runtime.settings) as transport:
            return await send_proof(
                self.runtime.sessions,
                release_id,
                to_address=to_address,
                segment_slug=segment,
                renderer=self.renderer,
                settings=self.runtime.settings,
                now=now,
                transport=transport,
            )
