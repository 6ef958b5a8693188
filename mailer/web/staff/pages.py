"""The staff pages: dashboard, releases (detail, preview, actions), delivery log,
contact history, bounces, suppressions, CSV exports.

Routes are thin: parse, check the role (:func:`mailer.accounts.users.permits`), call one
function of ``mailer.releases.*`` / ``mailer.store.ledger``, render.
Every state change is a POST reached from a confirmation page, carries the CSRF token
(checked by middleware, see :mod:`mailer.web.auth`), and answers with a redirect to
the release (303) and a one-line message. Workflow refusals come back as 409 with the
reason on the release page.

Previews of a message are served from their own route with ``Content-Security-Policy:
sandbox`` and shown in ``<iframe sandbox>``: the message's HTML runs in an opaque
origin with scripts off, never in the staff origin. Previews are rate-limited per user
(``web.previews_per_minute``, 429 beyond) and render in their own few threads
(``web.preview_concurrency``), so no number of previews can take the thread pool that
serves the unsubscribe endpoints.

Sign-in checks the password outside any database transaction, in its own few threads,
behind the limits of :mod:`mailer.web.limits`. A path id that is not a number in the
ids' range (``/releases/99999999999999999999``, ``/releases/abc``) is 404, never a
database error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from anyio import from_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mailer.accounts.users import Action, StaffUser, permits
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, MailerError, NotFoundError, WorkflowError
from mailer.domain.states import DeliveryStatus, ReleaseStatus, SuppressionReason, release_can_move
from mailer.message import Renderer
from mailer.releases import holds, workflow
from mailer.releases.approval import approve_release, submit_release
from mailer.releases.plan import renderer_for, variant_specs
from mailer.releases.preview import Preview, preview_release
from mailer.releases.proof import ProofResult, proof_transport, send_proof
from mailer.runtime import Runtime
from mailer.store import ledger as q
from mailer.store import releases as release_store
from mailer.store import reports
from mailer.store.db import transaction
from mailer.web.auth import Auth, csrf_token, safe_next
from mailer.web.limits import LoginLimiter, LoginRefusal, RateLimiter, ThreadSlots, client_ip, parse_networks
from mailer.web.paths import path_ids
from mailer.web.staff.charts import status_parts, time_chart
from mailer.web.staff.export import csv_rows

log = logging.getLogger("mailer.web.staff")

PAGE_SIZE = 50
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
)
_ACTION_TARGET = {
    Action.SUBMIT: ReleaseStatus.SUBMITTED,
    Action.APPROVE: ReleaseStatus.APPROVED,
    Action.PAUSE: ReleaseStatus.PAUSED,
    Action.CANCEL: ReleaseStatus.CANCELLED,
}
_SCHEDULABLE = {ReleaseStatus.DRAFT, ReleaseStatus.SUBMITTED, ReleaseStatus.APPROVED, ReleaseStatus.PAUSED}
_RETRY_FROM = {ReleaseStatus.SENDING, ReleaseStatus.PAUSED, ReleaseStatus.SENT, ReleaseStatus.PARTIAL}
RETRY_STATUSES = (DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED)
#: The sandboxed preview: no script, no plugin, no network but inline images; framed
#: only by our own pages.
PREVIEW_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def action_available(action: Action, status: ReleaseStatus, counts: dict[str, int]) -> bool:
    """True when the release's state lets ``action`` happen now (role aside)."""
    if action in _ACTION_TARGET:
        return release_can_move(status, _ACTION_TARGET[action])
    if action is Action.RESUME:
        return status is ReleaseStatus.PAUSED
    if action is Action.SCHEDULE:
        return status in _SCHEDULABLE
    if action is Action.PROOF:
        return status is not ReleaseStatus.CANCELLED
    if action is Action.RETRY:
        return status in _RETRY_FROM and any(counts.get(s.value, 0) for s in RETRY_STATUSES)
    return False


def parse_when(value: str | None, name: str) -> datetime | None:
    """A time from a form: ISO 8601 with a zone, or without one (then UTC, as the
    ``datetime-local`` inputs are labelled). Empty is None; InputError otherwise."""
    if value is None or not value.strip():
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"{name}: not a date and time: {value!r}") from None
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{name}: out of range: {value!r}") from None


def _int(value: str | None, name: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"{name}: not a number: {value!r}") from None
    if not 0 <= number < 2**31:
        raise InputError(f"{name}: out of range")
    return number


def _text(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise InputError("text with a NUL character")
    return value.strip()[:320]


@dataclass(frozen=True)
class LogQuery:
    """The delivery log's query string, parsed: filters, cursors, and what to show
    again in the form (``raw``)."""

    filters: q.LogFilter
    after: int | None
    before: int | None
    raw: dict[str, str]
    error: str | None


def parse_log_query(params: dict[str, str]) -> LogQuery:
    """Filters from the query string; a bad value is reported and dropped, not a 422."""
    raw = {k: params.get(k, "") for k in ("release", "status", "segment", "domain", "email", "since", "until")}
    errors: list[str] = []

    def attempt(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except InputError as exc:
            errors.append(str(exc))
            return None

    status = _text(raw["status"]) if "\x00" not in raw["status"] else None
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        errors.append(f"status: unknown status {status!r}")
        status = None
    filters = q.LogFilter(
        release_id=attempt(lambda: _int(raw["release"], "release")),
        status=status,
        segment=attempt(lambda: _text(raw["segment"])),
        domain=attempt(lambda: _text(raw["domain"])),
        email=attempt(lambda: _text(raw["email"])),
        since=attempt(lambda: parse_when(raw["since"], "since")),
        until=attempt(lambda: parse_when(raw["until"], "until")),
    )
    after = attempt(lambda: _int(params.get("after"), "after"))
    before = attempt(lambda: _int(params.get("before"), "before"))
    return LogQuery(filters, after, before, raw, "; ".join(errors) or None)


#: What a 429 sign-in says, by the limit that is full.
_REFUSAL_TEXT = {
    LoginRefusal.ADDRESS: "Too many failed sign-ins. Try again in 15 minutes.",
    LoginRefusal.IP: "Too many failed sign-ins from this network. Try again later.",
    LoginRefusal.GLOBAL: "Too many sign-in attempts right now. Try again in a minute.",
}


class StaffRoutes:
    """The staff pages bound to one runtime, renderer, template set and limits."""

    def __init__(self, runtime: Runtime, templates: Jinja2Templates, *, limiter: LoginLimiter | None = None) -> None:
        self.runtime = runtime
        self.templates = templates
        self.auth = Auth(runtime)
        web = runtime.settings.web
        self.limiter = limiter or LoginLimiter(
            per_address=web.login_failures_per_address,
            per_ip=web.login_failures_per_ip,
            per_minute=web.login_failures_per_minute,
            window=timedelta(minutes=web.login_window_minutes),
        )
        self.trusted = parse_networks(web.trusted_proxies)
        self.login_slots = ThreadSlots(web.login_concurrency)
        self.previews = RateLimiter(web.previews_per_minute, timedelta(minutes=1))
        self.preview_slots = ThreadSlots(web.preview_concurrency)
        # One warning per kind of refusal per 10 s: a flood must not become a log flood.
        self._refusal_log = RateLimiter(1, timedelta(seconds=10))
        self.renderer: Renderer = renderer_for(runtime.settings)

    def router(self) -> APIRouter:
        """The staff routes (kept out of the API's OpenAPI document)."""
        r = APIRouter(include_in_schema=False, dependencies=[Depends(path_ids)])
        r.add_api_route("/login", self.login_page, methods=["GET"], name="login")
        r.add_api_route("/login", self.login, methods=["POST"], name="login_post")
        r.add_api_route("/logout", self.logout, methods=["POST"], name="logout")
        r.add_api_route("/account/password", self.password_page, methods=["GET"], name="password")
        r.add_api_route("/account/password", self.change_password, methods=["POST"], name="password_post")
        r.add_api_route("/", self.dashboard, methods=["GET"], name="dashboard")
        r.add_api_route("/fragments/sending", self.sending_fragment, methods=["GET"], name="sending_fragment")
        r.add_api_route("/releases", self.release_list, methods=["GET"], name="releases")
        r.add_api_route("/releases/{release_id}", self.release_detail, methods=["GET"], name="release")
        r.add_api_route("/releases/{release_id}/progress", self.progress_fragment, methods=["GET"], name="progress")
        r.add_api_route("/releases/{release_id}/preview", self.bounded_preview_page, methods=["GET"], name="preview")
        r.add_api_route(
            "/releases/{release_id}/preview/frame", self.bounded_preview_frame, methods=["GET"], name="frame"
        )
        r.add_api_route("/releases/{release_id}/confirm/{action}", self.confirm, methods=["GET"], name="confirm")
        r.add_api_route("/releases/{release_id}/actions/{action}", self.act, methods=["POST"], name="act")
        r.add_api_route("/log", self.log_page, methods=["GET"], name="log")
        r.add_api_route("/log.csv", self.log_csv, methods=["GET"], name="log_csv")
        r.add_api_route("/contacts/{email}", self.contact_page, methods=["GET"], name="contact")
        r.add_api_route("/bounces", self.bounces_page, methods=["GET"], name="bounces")
        r.add_api_route("/bounces.csv", self.bounces_csv, methods=["GET"], name="bounces_csv")
        r.add_api_route("/suppressions", self.suppressions_page, methods=["GET"], name="suppressions")
        r.add_api_route("/suppressions.csv", self.suppressions_csv, methods=["GET"], name="suppressions_csv")
        return r

    # ------------------------------------------------------------------ helpers

    def _read(self) -> AbstractContextManager[Session]:
        """A read-only unit of work (see :func:`mailer.store.ledger.read_only`)."""
        return q.read_only(self.runtime.sessions)

    def _page(
        self, request: Request, name: str, context: dict[str, Any], *, user: StaffUser | None, status_code: int = 200
    ) -> Response:
        flash = request.session.pop("flash", []) if user is not None else []
        base = {"user": user, "csrf_token": csrf_token(request), "flash": flash, "error": None}
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)

    @staticmethod
    def _flash(request: Request, level: str, text: str) -> None:
        request.session["flash"] = [*request.session.get("flash", []), [level, text]]

    def forbidden(self, request: Request, user: StaffUser, action: Action) -> Response:
        """The 403 page for a role that may not take ``action``."""
        return self._page(request, "staff/forbidden.html", {"action": action.value}, user=user, status_code=403)

    # ------------------------------------------------------------------ sign-in

    def login_page(self, request: Request, next: str | None = None) -> Response:
        """The sign-in form (a signed-in user goes straight on)."""
        if self.auth.signed_in(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return self._page(request, "staff/login.html", {"next": safe_next(next), "email": ""}, user=None)

    async def login(
        self,
        request: Request,
        email: Annotated[str, Form(max_length=320)] = "",
        password: Annotated[str, Form(max_length=1024)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        """Check the password; 429 while a sign-in limit is full (see
        :mod:`mailer.web.limits`). The check runs in the sign-in threads with no
        transaction open; only the new session is written, in a short transaction."""
        ip = client_ip(request, self.trusted)
        context: dict[str, Any] = {"next": safe_next(next), "email": email}
        result: StaffUser | LoginRefusal | None
        refusal = self.limiter.refusal(email, ip, self.runtime.clock())
        if refusal is not None:
            result = refusal
        else:
            result = await self.login_slots.run(self._password_check, email, password, ip)
        if isinstance(result, LoginRefusal):
            if self._refusal_log.take(result.value, self.runtime.clock()):
                log.warning("login refused (%s rate limit) for %r from %s", result.value, email, ip)
            context["error"] = _REFUSAL_TEXT[result]
            return self._page(request, "staff/login.html", context, user=None, status_code=429)
        if result is None:
            log.warning("login failed for %r from %s", email, ip)
            context["error"] = "Wrong address or password."
            return self._page(request, "staff/login.html", context, user=None, status_code=401)
        await run_in_threadpool(self.auth.start, request, result)
        log.info("login %s (%s) from %s", result.email, result.role.value, ip)
        return RedirectResponse(safe_next(next), status_code=303)

    def _password_check(self, email: str, password: str, ip: str) -> StaffUser | LoginRefusal | None:
        """In a sign-in thread: the limits again (others may have failed while this one
        waited for a thread), then the password; counts a failure."""
        now = self.runtime.clock()
        refusal = self.limiter.refusal(email, ip, now)
        if refusal is not None:
            return refusal
        user = self.auth.verify(email, password)
        if user is None:
            self.limiter.failed(email, ip, now)
        else:
            self.limiter.succeeded(email, ip)
        return user

    def logout(self, request: Request) -> Response:
        """End the session (revoked in the database: a copy of the cookie is dead too)."""
        self.auth.sign_out(request)
        return RedirectResponse("/login", status_code=303)

    def password_page(self, request: Request, user: Annotated[StaffUser, Depends(_user)]) -> Response:
        """The form to change one's own password."""
        return self._page(request, "staff/password.html", {}, user=user)

    async def change_password(
        self,
        request: Request,
        user: Annotated[StaffUser, Depends(_user)],
        current: Annotated[str, Form(max_length=1024)] = "",
        new: Annotated[str, Form(max_length=1024)] = "",
        confirm: Annotated[str, Form(max_length=1024)] = "",
    ) -> Response:
        """Change the password: the current one must be right (failures count like
        sign-in failures); every session of the user ends, and this browser gets a new one."""
        ip = client_ip(request, self.trusted)
        error, status = None, 422
        if new != confirm:
            error = "The new passwords do not match."
        else:
            outcome = await self.login_slots.run(self._password_change, user, current, new, ip)
            if isinstance(outcome, LoginRefusal):
                error, status = _REFUSAL_TEXT[outcome], 429
            elif outcome is not None:
                status, error = outcome
        if error is not None:
            return self._page(request, "staff/password.html", {"error": error}, user=user, status_code=status)
        await run_in_threadpool(self.auth.start, request, user)
        log.info("%s changed their password from %s; their other sessions ended", user.email, ip)
        self._flash(request, "ok", "Password changed. Your other sessions were signed out.")
        return RedirectResponse("/", status_code=303)

    def _password_change(
        self, user: StaffUser, current: str, new: str, ip: str
    ) -> LoginRefusal | tuple[int, str] | None:
        """In a sign-in thread: check the current password, hash and store the new one
        (no transaction open while hashing). Returns a refusal, (status, error line), or
        None when the password was changed."""
        now = self.runtime.clock()
        refusal = self.limiter.refusal(user.email, ip, now)
        if refusal is not None:
            return refusal
        if self.auth.verify(user.email, current) is None:
            self.limiter.failed(user.email, ip, now)
            return 401, "The current password is wrong."
        try:
            self.auth.set_password(user.email, new)
        except InputError as exc:
            return 422, f"New {exc}"
        return None

    # ------------------------------------------------------------------ dashboard

    def dashboard(self, request: Request, user: Annotated[StaffUser, Depends(_user)]) -> Response:
        """Releases due in the next 24 hours, sending now, recent bounces and unsubscribes."""
        now = self.runtime.clock()
        with self._read() as session:
            context = {
                "due": q.releases_due(session, now=now, within=timedelta(hours=24)),
                "sending": q.sending_now(session),
                "bounces": q.bounces(session, limit=10).rows,
                "unsubscribes": q.recent_suppressions(session, [SuppressionReason.UNSUBSCRIBED], limit=10),
                "now": now,
            }
        return self._page(request, "staff/dashboard.html", context, user=user)

    def sending_fragment(self, request: Request, user: Annotated[StaffUser, Depends(_user)]) -> Response:
        """The dashboard's live part (htmx polls it)."""
        with self._read() as session:
            sending = q.sending_now(session)
        return self._page(request, "staff/_sending.html", {"sending": sending}, user=user)

    # ------------------------------------------------------------------ releases

    def release_list(
        self,
        request: Request,
        user: Annotated[StaffUser, Depends(_user)],
        status: str | None = None,
        after: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
        before: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
    ) -> Response:
        """Releases, newest first, optionally one status."""
        chosen = status if status in {s.value for s in ReleaseStatus} else None
        with self._read() as session:
            page = q.releases(session, status=chosen, after=after, before=before, limit=PAGE_SIZE)
        context = {"page": page, "status": chosen or "", "statuses": [s.value for s in ReleaseStatus]}
        return self._page(request, "staff/releases.html", context, user=user)

    def _detail_context(self, session: Session, release_id: int, user: StaffUser) -> dict[str, Any]:
        release = release_store.get_release(session, release_id)
        client = release_store.get_client_by_id(session, release.client_id)
        report = reports.release_report(session, release_id)
        status = ReleaseStatus(release.status)
        counts: dict[str, int] = report["counts"]
        actions = [
            a.value
            for a in RELEASE_ACTIONS
            if action_available(a, status, counts) and permits(user, a, author=release.author, status=release.status)
        ]
        return {
            "release": release,
            "client": client,
            "report": report,
            "progress": q.Progress(release.id, release.title, release.status, counts),
            "segments": release_store.release_segments(session, release_id),
            "events": release_store.release_events(session, release_id),
            "approvals": release_store.release_approvals(session, release_id),
            "actions": actions,
            "chart": time_chart(q.sent_per_minute(session, release_id)),
            "parts": status_parts(counts),
            "problems": report["problems"],
            "not_after": holds.effective_not_after(session, release, self.runtime.settings),
            "waiting": release.hold_reason if status is ReleaseStatus.APPROVED else None,
        }

    def release_detail(self, request: Request, release_id: int, user: Annotated[StaffUser, Depends(_user)]) -> Response:
        """One release: segments with counts and progress, chart, history, allowed actions."""
        try:
            with self._read() as session:
                context = self._detail_context(session, release_id, user)
        except NotFoundError as exc:
            return self._page(request, "staff/not_found.html", {"what": str(exc)}, user=user, status_code=404)
        return self._page(request, "staff/release.html", context, user=user)

    def progress_fragment(
        self, request: Request, release_id: int, user: Annotated[StaffUser, Depends(_user)]
    ) -> Response:
        """A release's live progress bar (htmx polls it while it sends)."""
        with self._read() as session:
            progress = q.release_progress(session, release_id)
        if progress is None:
            return self._page(request, "staff/not_found.html", {"what": "no such release"}, user=user, status_code=404)
        return self._page(request, "staff/_progress.html", {"progress": progress}, user=user)

    def _preview_refused(self, user: StaffUser) -> bool:
        """True (and logged) when ``user`` has used up this minute's previews."""
        if self.previews.take(user.id, self.runtime.clock()):
            return False
        if self._refusal_log.take(("preview", user.id), self.runtime.clock()):
            log.warning("previews refused for %s: over %s a minute", user.email, self.previews.limit)
        return True

    async def bounded_preview_page(
        self,
        request: Request,
        release_id: int,
        user: Annotated[StaffUser, Depends(_user)],
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """:meth:`preview_page` under the per-user rate limit, in a preview thread."""
        if self._preview_refused(user):
            context = {"what": "Too many previews: wait a minute and reload."}
            return self._page(request, "staff/too_many.html", context, user=user, status_code=429)
        return await self.preview_slots.run(self.preview_page, request, release_id, user, segment, contact)

    async def bounded_preview_frame(
        self,
        release_id: int,
        user: Annotated[StaffUser, Depends(_user)],
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """:meth:`preview_frame` under the per-user rate limit, in a preview thread."""
        if self._preview_refused(user):
            return Response("too many previews", status_code=429, media_type="text/plain", headers=PREVIEW_HEADERS)
        return await self.preview_slots.run(self.preview_frame, release_id, user, segment, contact)

    def preview_page(
        self,
        request: Request,
        release_id: int,
        user: Annotated[StaffUser, Depends(_user)],
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """The message one segment (and optionally one contact) would get: subject, text
        part, and the HTML part in a sandboxed iframe."""
        try:
            with self._read() as session:
                slugs, chosen, preview = self._preview(session, release_id, segment, contact)
                release = release_store.get_release(session, release_id)
        except NotFoundError as exc:
            return self._page(request, "staff/not_found.html", {"what": str(exc)}, user=user, status_code=404)
        except MailerError as exc:
            return self._page(request, "staff/not_found.html", {"what": str(exc)}, user=user, status_code=422)
        context: dict[str, Any] = {
            "release": release,
            "preview": preview,
            "segments": slugs,
            "segment": chosen,
            "contact": contact or "",
        }
        return self._page(request, "staff/preview.html", context, user=user)

    def _preview(
        self, session: Session, release_id: int, segment: str | None, contact: str | None
    ) -> tuple[list[str], str, Preview]:
        """(segment slugs, the chosen one, its preview): the asked segment when the release
        has it, else the first; the asked contact, else the segment's first."""
        specs = variant_specs(session, release_id, self.runtime.settings)
        slugs = [slug for _, slug, _ in specs]
        chosen = segment if segment in slugs else (slugs[0] if slugs else "")
        preview = preview_release(
            session,
            release_id,
            segment_slug=chosen,
            contact_email=_text(contact),
            renderer=self.renderer,
            settings=self.runtime.settings,
            now=self.runtime.clock(),
        )
        return slugs, chosen, preview

    def preview_frame(
        self,
        release_id: int,
        user: Annotated[StaffUser, Depends(_user)],
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """The HTML part alone, under ``Content-Security-Policy: sandbox`` (see module doc)."""
        try:
            with self._read() as session:
                _, _, preview = self._preview(session, release_id, segment, contact)
        except MailerError as exc:
            code = 404 if isinstance(exc, NotFoundError) else 422
            return Response(str(exc), status_code=code, media_type="text/plain", headers=PREVIEW_HEADERS)
        return HTMLResponse(preview.parts.html, headers=PREVIEW_HEADERS)

    # ------------------------------------------------------------------ actions

    def confirm(
        self, request: Request, release_id: int, action: str, user: Annotated[StaffUser, Depends(_user)]
    ) -> Response:
        """The confirmation step before an action: what will happen, and the form."""
        try:
            chosen = Action(action)
        except ValueError:
            return self._page(request, "staff/not_found.html", {"what": "no such action"}, user=user, status_code=404)
        try:
            with self._read() as session:
                context = self._detail_context(session, release_id, user)
        except NotFoundError as exc:
            return self._page(request, "staff/not_found.html", {"what": str(exc)}, user=user, status_code=404)
        release = context["release"]
        if chosen not in RELEASE_ACTIONS or not permits(user, chosen, author=release.author, status=release.status):
            return self.forbidden(request, user, chosen)
        context["action"] = chosen.value
        context["retry_statuses"] = [s.value for s in RETRY_STATUSES]
        context["segment_slugs"] = [seg.slug for _, seg in context["segments"]]
        return self._page(request, "staff/confirm.html", context, user=user)

    def act(
        self,
        request: Request,
        release_id: int,
        action: str,
        user: Annotated[StaffUser, Depends(_user)],
        send_at: Annotated[str, Form(max_length=64)] = "",
        statuses: Annotated[list[str] | None, Form()] = None,
        segment: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        """Do a confirmed action; 403 when the role may not, 409 when the state does not allow it."""
        try:
            chosen = Action(action)
        except ValueError:
            return self._page(request, "staff/not_found.html", {"what": "no such action"}, user=user, status_code=404)
        if chosen not in RELEASE_ACTIONS:
            return self.forbidden(request, user, chosen)
        try:
            with self._read() as session:
                release = release_store.get_release(session, release_id)
                author, status = release.author, release.status
        except NotFoundError as exc:
            return self._page(request, "staff/not_found.html", {"what": str(exc)}, user=user, status_code=404)
        if not permits(user, chosen, author=author, status=status):
            log.warning("%s (%s) refused %s on release %s", user.email, user.role.value, chosen.value, release_id)
            return self.forbidden(request, user, chosen)
        try:
            message = self._perform(chosen, release_id, user, send_at=send_at, statuses=statuses, segment=segment)
        except (WorkflowError, InputError, MailerError) as exc:
            code = 409 if isinstance(exc, WorkflowError) else 422
            with self._read() as session:
                context = self._detail_context(session, release_id, user)
            context["error"] = str(exc)
            return self._page(request, "staff/release.html", context, user=user, status_code=code)
        self._flash(request, "ok" if not message.startswith("refused") else "error", message)
        log.info("%s %s release %s: %s", user.email, chosen.value, release_id, message)
        return RedirectResponse(f"/releases/{release_id}", status_code=303)

    def _perform(
        self,
        action: Action,
        release_id: int,
        user: StaffUser,
        *,
        send_at: str,
        statuses: list[str] | None,
        segment: str,
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
                at = parse_when(send_at, "send_at")
                if at is None:
                    raise InputError("send_at: give a date and time")
                workflow.schedule(session, release_id, at=at, actor=actor, now=now)
                return f"scheduled for {at:%Y-%m-%d %H:%M} UTC"
            if action is Action.PAUSE:
                workflow.pause(session, release_id, actor=actor, now=now)
                return "paused: no new messages are claimed"
            if action is Action.RESUME:
                workflow.resume(session, release_id, actor=actor, now=now)
                return "resumed"
            if action is Action.RETRY:
                chosen = [DeliveryStatus(s) for s in statuses or [] if s in {r.value for r in RETRY_STATUSES}]
                count = workflow.retry(session, release_id, chosen, actor=actor, now=now)
                return f"{count} deliveries queued again"
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

    # ------------------------------------------------------------------ delivery log

    def log_page(self, request: Request, user: Annotated[StaffUser, Depends(_user)]) -> Response:
        """The delivery log: filters, keyset pages; each row links to the contact."""
        parsed = parse_log_query(dict(request.query_params))
        with self._read() as session:
            page = q.delivery_log(session, parsed.filters, after=parsed.after, before=parsed.before, limit=PAGE_SIZE)
            segments = q.segment_slugs(session)
        context = {
            "page": page,
            "form": parsed.raw,
            "error": parsed.error,
            "statuses": [s.value for s in DeliveryStatus],
            "segments": segments,
            "query": _query_string(parsed.raw),
        }
        return self._page(request, "staff/log.html", context, user=user)

    def log_csv(self, request: Request, user: Annotated[StaffUser, Depends(_user)]) -> Response:
        """The filtered log as CSV (every matching row, streamed)."""
        filters = parse_log_query(dict(request.query_params)).filters
        header = (
            "id", "release", "email", "domain", "segment", "status", "attempts",
            "last_code", "last_reply", "reason", "message_id", "sent_at", "updated_at",
        )  # fmt: skip

        def row(r: q.LogLine) -> tuple[Any, ...]:
            return (
                r.id, r.release_id, r.email, r.domain, r.segment, r.status, r.attempts,
                r.last_code, r.last_reply, r.reason, r.message_id, r.sent_at, r.updated_at,
            )  # fmt: skip

        return _csv_response(
            "deliveries.csv",
            csv_rows(
                self.runtime.sessions,
                lambda s, after: q.delivery_log(s, filters, after=after, limit=500),
                header,
                row,
            ),
        )

    def contact_page(self, request: Request, email: str, user: Annotated[StaffUser, Depends(_user)]) -> Response:
        """Everything about one address: deliveries, bounces (diagnostic and raw message),
        unsubscribes, suppressions."""
        try:
            address = normalize_email(email)
        except InputError:
            address = email.strip().lower()
        with self._read() as session:
            history = q.contact_history(session, address)
        if history is None:
            what = f"nothing recorded about {address}"
            return self._page(request, "staff/not_found.html", {"what": what}, user=user, status_code=404)
        return self._page(request, "staff/contact.html", {"history": history}, user=user)

    # ------------------------------------------------------------------ bounces, suppressions

    def bounces_page(
        self,
        request: Request,
        user: Annotated[StaffUser, Depends(_user)],
        kind: str | None = None,
        after: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
        before: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
    ) -> Response:
        """Bounces, complaints and refusals, newest first."""
        chosen = kind if kind in q.BOUNCE_KINDS else None
        with self._read() as session:
            page = q.bounces(session, kind=chosen, after=after, before=before, limit=PAGE_SIZE)
        context = {"page": page, "kind": chosen or "", "kinds": q.BOUNCE_KINDS}
        return self._page(request, "staff/bounces.html", context, user=user)

    def bounces_csv(self, user: Annotated[StaffUser, Depends(_user)], kind: str | None = None) -> Response:
        """The bounce list (one kind or all) as CSV."""
        chosen = kind if kind in q.BOUNCE_KINDS else None
        header = ("id", "at", "kind", "code", "detail", "release", "email")
        return _csv_response(
            "bounces.csv",
            csv_rows(
                self.runtime.sessions,
                lambda s, after: q.bounces(s, kind=chosen, after=after, limit=500),
                header,
                lambda r: (r.id, r.at, r.kind, r.code, r.detail, r.release_id, r.email),
            ),
        )

    def suppressions_page(
        self,
        request: Request,
        user: Annotated[StaffUser, Depends(_user)],
        reason: str | None = None,
        scope: Annotated[str | None, Query(max_length=64)] = None,
        email: Annotated[str | None, Query(max_length=320)] = None,
        after: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
        before: Annotated[int | None, Query(ge=0, lt=2**31)] = None,
    ) -> Response:
        """Suppressions, newest first, by reason, scope or address."""
        filters = _suppression_filters(reason, scope, email)
        with self._read() as session:
            page = q.suppressions(
                session,
                reason=filters["reason"],
                scope=filters["scope"],
                email=filters["email"],
                after=after,
                before=before,
                limit=PAGE_SIZE,
            )
        form = {"reason": filters["reason"] or "", "scope": filters["scope"] or "", "email": filters["email"] or ""}
        context = {
            "page": page,
            "form": form,
            "reasons": [r.value for r in SuppressionReason],
            "query": _query_string(form),
        }
        return self._page(request, "staff/suppressions.html", context, user=user)

    def suppressions_csv(
        self,
        user: Annotated[StaffUser, Depends(_user)],
        reason: str | None = None,
        scope: Annotated[str | None, Query(max_length=64)] = None,
        email: Annotated[str | None, Query(max_length=320)] = None,
    ) -> Response:
        """The filtered suppression list as CSV."""
        filters = _suppression_filters(reason, scope, email)
        return _csv_response(
            "suppressions.csv",
            csv_rows(
                self.runtime.sessions,
                lambda s, after: q.suppressions(
                    s, reason=filters["reason"], scope=filters["scope"], email=filters["email"], after=after, limit=500
                ),
                ("id", "email", "scope", "reason", "source", "created_at"),
                lambda r: (r.id, r.email, r.scope, r.reason, r.source, r.created_at),
            ),
        )


def _suppression_filters(reason: str | None, scope: str | None, email: str | None) -> dict[str, str | None]:
    return {
        "reason": reason if reason in {r.value for r in SuppressionReason} else None,
        "scope": scope.strip() if scope and scope.strip() and "\x00" not in scope else None,
        "email": email.strip().lower() if email and email.strip() and "\x00" not in email else None,
    }


def _query_string(form: dict[str, str]) -> str:
    return urlencode({k: v for k, v in form.items() if v})


def _csv_response(filename: str, body: Any) -> Response:
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _user(request: Request) -> StaffUser:
    """Dependency: the signed-in user (the app's Auth, stored on app state)."""
    auth: Auth = request.app.state.auth
    return auth.user(request)
