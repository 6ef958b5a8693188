"""Staff sign-in: sessions, CSRF, the Origin check, security headers.

* **Sessions** are server-side (``web_sessions``, see :mod:`mailer.accounts.web_sessions`). The browser
  holds a random session id inside Starlette's signed cookie (``SessionMiddleware``,
  keyed by a key derived from ``secret_key``; HttpOnly, SameSite=Lax, Secure when
  ``web.base_url`` is https), next to one-shot flash messages. Every request looks the
  id up: a revoked (sign-out, password change, user disabled), expired
  (``web.session_hours``) or idle (``web.session_idle_minutes``) session is no session,
  so a copied cookie dies with the session. A sign-in always starts a new id.
* **CSRF** is asgi-csrf (signed double-submit cookie): every unsafe request that carries
  cookies needs the ``csrftoken`` form field (or ``x-csrftoken`` header) matching the
  ``csrftoken`` cookie, else 403 before any route runs. ``/login`` is protected even
  without cookies (login CSRF). Exempt: ``/u/...`` (RFC 8058 one-click unsubscribe comes
  from mail clients with no cookie and no token; the signed URL is its credential) and
  ``/api/...`` (Bearer tokens, never cookies). asgi-csrf fits FastAPI as plain ASGI
  middleware: it replays the body it read, so ``Form()`` parameters still work.
  :class:`SessionGuard` binds the token to the session: while signed in, the token is an
  HMAC of the session id (signed like asgi-csrf's own), re-issued whenever the session
  id changes, and an unsafe request whose token belongs to no or another session is 403
  (a token planted from a sibling subdomain, or kept from an earlier session, fails).
* **Origin check** (:class:`SessionGuard`): an unsafe request whose ``Origin`` (else
  ``Referer``) names another site than ``web.base_url`` or the request's own host is
  403. Browsers send ``Origin`` on every POST; a request with neither header is not from
  a browser form, and still needs the CSRF token.
* **Security headers** on every response that did not set its own: a CSP without inline
  scripts, ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, ``nosniff``.

Over 400 lines on purpose: one concern (who the staff caller is: sessions, CSRF, the
Origin check, the multipart guard); each piece guards the others' assumptions.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import Headers
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.accounts.passwords import hash_password
from mailer.accounts.signin import change_password, check_password, login_candidate, save_rehash
from mailer.accounts.users import StaffUser
from mailer.accounts.web_sessions import end_session, session_owner, start_session, touch_session
from mailer.message.tokens import signing_secret
from mailer.runtime import Runtime
from mailer.store.db import transaction

log = logging.getLogger("mailer.web.auth")

SESSION_COOKIE = "mailer_session"
CSRF_FIELD = "csrftoken"
#: asgi-csrf's signing namespace (its default); bound tokens are signed the same way.
CSRF_NAMESPACE = "csrftoken"
#: A session's last use is written at most this often (not a write per request).
TOUCH_EVERY = timedelta(minutes=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
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


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class CsrfBinding:
    """CSRF tokens bound to a session id: asgi-csrf's signed format, with an HMAC of the
    session id as the signed value."""

    def __init__(self, secret: str) -> None:
        self._signer = URLSafeSerializer(derived_key(secret, "csrf"))
        self._key = derived_key(secret, "csrf-session").encode()

    def _mac(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def token_for(self, session_id: str) -> str:
        """The token forms carry while this session is signed in."""
        return str(self._signer.dumps(self._mac(session_id), CSRF_NAMESPACE))

    def bound(self, token: str | None, session_id: str) -> bool:
        """True when ``token`` is this session's."""
        if not token:
            return False
        try:
            value = self._signer.loads(token, CSRF_NAMESPACE)
        except BadSignature:
            return False
        return isinstance(value, str) and hmac.compare_digest(value, self._mac(session_id))


class SessionGuard:
    """ASGI middleware inside asgi-csrf: the Origin/Referer check and the session-bound
    CSRF token (see module docstring)."""

    def __init__(self, app: ASGIApp, *, binding: CsrfBinding, base_url: str, secure: bool) -> None:
        self.app = app
        self.binding = binding
        self.base_origin = _origin(base_url)
        self.secure = secure

    def _same_site(self, headers: Headers) -> bool:
        host = headers.get("host", "").lower()
        allowed = {self.base_origin, f"http://{host}", f"https://{host}"}
        origin = headers.get("origin")
        if origin is not None:
            return origin.strip().rstrip("/").lower() in allowed
        referer = headers.get("referer")
        if referer:
            return _origin(referer) in allowed
        return True

    @staticmethod
    def _cookie_token(headers: Headers) -> str | None:
        raw = headers.get("cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # a malformed Cookie header carries no token
            return None
        morsel = jar.get(CSRF_FIELD)
        return morsel.value if morsel is not None else None

    async def _refuse(self, send: Send, text: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": text.encode()})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _csrf_exempt(scope):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session: dict[str, Any] = scope.get("session", {})
        cookie_token = self._cookie_token(headers)
        if scope["method"] not in SAFE_METHODS:
            if not self._same_site(headers):
                log.warning("refused %s %s: Origin/Referer of another site", scope["method"], scope.get("path"))
                await self._refuse(send, "request from another site refused")
                return
            sid = session.get("sid")
            if isinstance(sid, str) and not self.binding.bound(cookie_token, sid):
                await self._refuse(send, "CSRF token does not belong to this session")
                return

        original: Callable[[], str] | None = scope.get("csrftoken")

        def token() -> str:
            sid = session.get("sid")
            if isinstance(sid, str):
                return self.binding.token_for(sid)
            if original is None:
                raise RuntimeError("asgi-csrf middleware is not installed")
            return original()

        async def send_bound(message: Message) -> None:
            if message["type"] == "http.response.start":
                sid = session.get("sid")
                if isinstance(sid, str) and not self.binding.bound(cookie_token, sid):
                    attrs = [f"{CSRF_FIELD}={self.binding.token_for(sid)}", "Path=/", "SameSite=Lax"]
                    if self.secure:
                        attrs.append("Secure")
                    extra = [(b"set-cookie", "; ".join(attrs).encode()), (b"vary", b"Cookie")]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app({**scope, "csrftoken": token}, receive, send_bound)


class MultipartNeedsHeader:
    """ASGI middleware outside asgi-csrf: an unsafe multipart/form-data request (a file
    upload) that carries cookies must send its CSRF token in the ``x-csrftoken`` header
    (the upload forms post through htmx with it), else 403. asgi-csrf's own reading of a
    token from a multipart body fails with python-multipart >= 0.0.13 (a TypeError: a 500),
    so it is never reached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and not _csrf_exempt(scope):
            headers = Headers(scope=scope)
            multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
            if multipart and headers.get("cookie") and not headers.get("x-csrftoken"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                    }
                )
                await send({"type": "http.response.body", "body": b"uploads carry the CSRF token in x-csrftoken"})
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, runtime: Runtime) -> None:
    """Add the session, CSRF, Origin-check and security-header middleware to ``app``."""
    settings = runtime.settings
    secret = signing_secret(settings)
    https = settings.web.base_url.startswith("https://")
    app.add_middleware(SessionGuard, binding=CsrfBinding(secret), base_url=settings.web.base_url, secure=https)
    app.add_middleware(
        asgi_csrf,
        signing_secret=derived_key(secret, "csrf"),
        signing_namespace=CSRF_NAMESPACE,
        always_protect={"/login"},
        skip_if_scope=_csrf_exempt,
        cookie_secure=https,
        cookie_samesite="Lax",
    )
    app.add_middleware(MultipartNeedsHeader)
    app.add_middleware(
        SessionMiddleware,
        secret_key=derived_key(secret, "session"),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.web.session_hours * 3600),
        same_site="lax",
        https_only=https,
    )
    app.add_middleware(SecurityHeaders)


def csrf_token(request: Request) -> str:
    """The CSRF token to put in a form (bound to the session while signed in)."""
    getter: Callable[[], str] | None = request.scope.get("csrftoken")
    if getter is None:
        raise RuntimeError("asgi-csrf middleware is not installed")
    return getter()


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
    """Request dependencies bound to one runtime: who is signed in."""

    runtime: Runtime

    @property
    def lifetime(self) -> timedelta:
        """How long a session lasts from sign-in."""
        return timedelta(hours=self.runtime.settings.web.session_hours)

    @property
    def idle(self) -> timedelta:
        """How long a session may go unused."""
        return timedelta(minutes=self.runtime.settings.web.session_idle_minutes)

    @staticmethod
    def session_id(request: Request) -> str | None:
        """The browser's session id, if it sent one."""
        sid = request.session.get("sid")
        return sid if isinstance(sid, str) else None

    def signed_in(self, request: Request) -> StaffUser | None:
        """The active user of this request's open session, else None (a dead session is
        cleared from the cookie). Looked up once per request."""
        if "mailer.user" in request.scope:
            cached: StaffUser | None = request.scope["mailer.user"]
            return cached
        sid = self.session_id(request)
        user = None
        if sid is not None:
            now = self.runtime.clock()
            with transaction(self.runtime.sessions) as session:
                session.connection(execution_options={"sqlite_deferred": True})
                found = session_owner(session, sid, now=now, idle=self.idle)
            if found is None:
                request.session.clear()
            else:
                user = found.user
                if now - found.last_seen_at >= TOUCH_EVERY:
                    with transaction(self.runtime.sessions) as session:
                        touch_session(session, sid, now=now)
        request.scope["mailer.user"] = user
        return user

    def user(self, request: Request) -> StaffUser:
        """Dependency: the signed-in user; raises NotSignedIn."""
        user = self.signed_in(request)
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise NotSignedIn(target)
        return user

    def verify(self, email: str, password: str) -> StaffUser | None:
        """The active user with this address and password, else None. Blocking (Argon2):
        call it from a thread. The user is read in a read transaction, the hash checked
        with no transaction open, and a rehash (rare) written in a short one."""
        with transaction(self.runtime.sessions) as session:
            session.connection(execution_options={"sqlite_deferred": True})
            candidate = login_candidate(session, email)
        user, rehash = check_password(candidate, password)
        if user is not None and rehash is not None:
            with transaction(self.runtime.sessions) as session:
                save_rehash(session, user.id, rehash)
        return user

    def set_password(self, email: str, password: str) -> int:
        """Hash ``password`` (no transaction open), store it and end every session of
        the user; returns how many ended. InputError for a too short password."""
        hashed = hash_password(password)
        with transaction(self.runtime.sessions) as session:
            return change_password(session, email, hashed, now=self.runtime.clock())

    def start(self, request: Request, user: StaffUser) -> None:
        """Start a new session for ``user`` (the browser's earlier one is revoked) and put
        its id into the cookie, of whose earlier content nothing survives."""
        with transaction(self.runtime.sessions) as session:
            session_id = start_session(
                session, user.id, now=self.runtime.clock(), lifetime=self.lifetime, replaces=self.session_id(request)
            )
        request.session.clear()
        request.session["sid"] = session_id
        request.scope["mailer.user"] = user

    def sign_out(self, request: Request) -> None:
        """Revoke the session and clear the cookie."""
        sid = self.session_id(request)
        if sid is not None:
            with transaction(self.runtime.sessions) as session:
                end_session(session, sid, now=self.runtime.clock())
        request.session.clear()
        request.scope["mailer.user"] = None
