"""Staff sign-in: sessions, CSRF, roles, login rate limit, security headers.

* **Sessions** are Starlette's signed cookie (``SessionMiddleware``; itsdangerous under
  the hood) holding only the user id, keyed by a key derived from ``secret_key``: HttpOnly,
  SameSite=Lax, Secure when ``web.base_url`` is https, 12 hours. The user is loaded on
  every request, so disabling a user ends their sessions at once.
* **CSRF** is asgi-csrf (signed double-submit cookie): every unsafe request that carries
  cookies needs the ``csrftoken`` form field (or ``x-csrftoken`` header) matching the
  ``csrftoken`` cookie, else 403 before any route runs. ``/login`` is protected even
  without cookies (login CSRF). Exempt: ``/u/...`` (RFC 8058 one-click unsubscribe comes
  from mail clients with no cookie and no token; the signed URL is its credential) and
  ``/api/...`` (Bearer tokens, never cookies). asgi-csrf fits FastAPI as plain ASGI
  middleware: it replays the body it read, so ``Form()`` parameters still work.
* **Login rate limit**: 5 failures per (address, client IP) within 15 minutes answer 429
  until the window passes; every failure is logged. The limiter is per process.
* **Security headers** on every response that did not set its own: a CSP without inline
  scripts, ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, ``nosniff``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.app import Runtime
from mailer.db import transaction
from mailer.tokens import signing_secret
from mailer.users import StaffUser, user_by_id

log = logging.getLogger("mailer.web.auth")

SESSION_COOKIE = "mailer_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrftoken"
#: Paths whose unsafe requests skip the CSRF check (see module docstring).
CSRF_EXEMPT_PREFIXES = ("/u/", "/api/")

#: The staff pages' policy: scripts and styles only from our own files (htmx is vendored).
STAFF_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", STAFF_CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


def derived_key(secret: str, purpose: str) -> str:
    """A key for one purpose derived from ``secret_key``: a session cookie signature is
    never valid as an unsubscribe token or a CSRF token, and the other way round."""
    return hashlib.sha256(f"mailer:{purpose}\x00{secret}".encode()).hexdigest()


class SecurityHeaders:
    """ASGI middleware: add :data:`SECURITY_HEADERS` that a response did not set itself
    (the public pages and the sandboxed preview set their own CSP and framing rules)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(k).lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _csrf_exempt(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return path.startswith(CSRF_EXEMPT_PREFIXES)


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the session, CSRF and security-header middleware to ``app``."""
    settings = runtime.settings
    secret = signing_secret(settings)
    https = settings.web.base_url.startswith("https://")
    app.add_middleware(
        asgi_csrf,
        signing_secret=derived_key(secret, "csrf"),
        always_protect={"/login"},
        skip_if_scope=_csrf_exempt,
        cookie_secure=https,
        cookie_samesite="Lax",
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=derived_key(secret, "session"),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=https,
    )
    app.add_middleware(SecurityHeaders)


def csrf_token(request: Request) -> str:
    """The CSRF token to put in a form (asgi-csrf sets its cookie on this response)."""
    getter: Callable[[], str] | None = request.scope.get("csrftoken")
    if getter is None:
        raise RuntimeError("asgi-csrf middleware is not installed")
    return getter()


# ======================================================================== rate limit


@dataclass
class LoginLimiter:
    """Counts failed logins per (address, client IP) in a sliding window.

    ``blocked`` is True once ``max_failures`` failures fall inside ``window``; a
    successful login clears the key. Thread-safe (sync routes run in a thread pool).
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    max_keys: int = 100_000
    _failures: dict[tuple[str, str], deque[datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, email: str, ip: str, now: datetime) -> bool:
        """True when this address and IP may not try again yet."""
        key = (email.strip().lower(), ip)
        with self._lock:
            return len(self._recent(key, now)) >= self.max_failures

    def failed(self, email: str, ip: str, now: datetime) -> None:
        """Record one failure."""
        key = (email.strip().lower(), ip)
        with self._lock:
            if len(self._failures) >= self.max_keys:
                # Memory stays bounded under a flood: drop keys whose failures expired.
                for stale in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
                    del self._failures[stale]
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times

    def succeeded(self, email: str, ip: str) -> None:
        """Forget the failures of this address and IP."""
        with self._lock:
            self._failures.pop((email.strip().lower(), ip), None)


# ======================================================================== who is asking


class NotSignedIn(Exception):
    """The request has no valid session; the app answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None) -> str:
    """A local path to return to after login; anything else (other hosts, ``//x``,
    backslashes, control characters) becomes ``/``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    return value


@dataclass(frozen=True)
class Auth:
    """Request dependencies bound to one runtime: who is signed in, and may they act."""

    runtime: Runtime

    def signed_in(self, request: Request) -> StaffUser | None:
        """The active user of this session, else None (a stale session is cleared)."""
        user_id = request.session.get("uid")
        if not isinstance(user_id, int):
            return None
        with transaction(self.runtime.sessions) as session:
            session.connection(execution_options={"sqlite_deferred": True})
            user = user_by_id(session, user_id)
        if user is None:
            request.session.clear()
        return user

    def user(self, request: Request) -> StaffUser:
        """Dependency: the signed-in user; raises NotSignedIn."""
        user = self.signed_in(request)
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise NotSignedIn(target)
        return user

    @staticmethod
    def sign_in(request: Request, user: StaffUser) -> None:
        """Start a fresh session for ``user`` (nothing of an earlier session survives)."""
        request.session.clear()
        request.session["uid"] = user.id

    @staticmethod
    def sign_out(request: Request) -> None:
        """End the session."""
        request.session.clear()


def client_ip(request: Request) -> str:
    """The client's address as the server saw it (uvicorn applies trusted proxy headers)."""
    return request.client.host if request.client is not None else "unknown"
