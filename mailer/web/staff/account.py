"""Signing in and out, and changing one's own password.

Sign-in checks the password outside any database transaction, in its own few threads,
behind the limits of :mod:`mailer.web.limits`: a flood of guesses can neither take the
thread pool that serves the unsubscribe endpoints nor hold the database's write lock.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.accounts.users import StaffUser
from mailer.domain.errors import InputError
from mailer.web.audit import record_web
from mailer.web.auth import Auth, safe_next
from mailer.web.limits import LoginLimiter, LoginRefusal, RateLimiter, ThreadSlots, client_ip, parse_networks
from mailer.web.staff.view import CurrentUser, StaffView

log = logging.getLogger("mailer.web.staff")

#: What a 429 sign-in says, by the limit that is full.
_REFUSAL_TEXT = {
    LoginRefusal.ADDRESS: "Too many failed sign-ins. Try again in 15 minutes.",
    LoginRefusal.IP: "Too many failed sign-ins from this network. Try again later.",
    LoginRefusal.GLOBAL: "Too many sign-in attempts right now. Try again in a minute.",
}


class AccountPages:
    """``/login``, ``/logout`` and ``/account/password``."""

    def __init__(self, view: StaffView, *, limiter: LoginLimiter | None = None) -> None:
        self.view = view
        self.runtime = view.runtime
        self.auth = Auth(view.runtime)
        web = view.runtime.settings.web
        self.limiter = limiter or LoginLimiter(
            per_address=web.login_failures_per_address,
            per_ip=web.login_failures_per_ip,
            per_minute=web.login_failures_per_minute,
            window=timedelta(minutes=web.login_window_minutes),
        )
        self.trusted = parse_networks(web.trusted_proxies)
        self.login_slots = ThreadSlots(web.login_concurrency)
        # One warning per kind of refusal per 10 s: a flood must not become a log flood.
        self._refusal_log = RateLimiter(1, timedelta(seconds=10))

    def login_page(self, request: Request, next: str | None = None) -> Response:
        """The sign-in form (a signed-in user goes straight on)."""
        if self.auth.signed_in(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return self.view.page(request, "staff/login.html", {"next": safe_next(next), "email": ""}, user=None)

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
            return self.view.page(request, "staff/login.html", context, user=None, status_code=429)
        if result is None:
            log.warning("login failed for %r from %s", email, ip)
            await run_in_threadpool(record_web, self.runtime, actor=email.strip()[:320], action="signin_failed", ip=ip)
            context["error"] = "Wrong address or password."
            return self.view.page(request, "staff/login.html", context, user=None, status_code=401)
        await run_in_threadpool(self.auth.start, request, result)
        await run_in_threadpool(record_web, self.runtime, actor=result.email, action="signin", ip=ip)
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

    def password_page(self, request: Request, user: CurrentUser) -> Response:
        """The form to change one's own password."""
        return self.view.page(request, "staff/password.html", {}, user=user)

    async def change_password(
        self,
        request: Request,
        user: CurrentUser,
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
            return self.view.page(request, "staff/password.html", {"error": error}, user=user, status_code=status)
        await run_in_threadpool(self.auth.start, request, user)
        await run_in_threadpool(
            record_web, self.runtime, actor=user.email, action="user.password", target=user.email, ip=ip
        )
        log.info("%s changed their password from %s; their other sessions ended", user.email, ip)
        self.view.flash(request, "ok", "Password changed. Your other sessions were signed out.")
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
