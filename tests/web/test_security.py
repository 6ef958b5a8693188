"""Web hardening, on SQLite and PostgreSQL unless a test says otherwise: server-side
sessions (revoked at sign-out, password change and user disable; a new id at every
sign-in; CSRF tokens bound to the session; the Origin check), sign-in limits (per
address, per IP, global; X-Forwarded-For only from trusted proxies; no password hashing
inside a write transaction), API token scopes and expiry, preview limits, and 404 for
ids no row can have. The login flood runs end to end against a real `mailer web`.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.requests import Request
from typer.testing import CliRunner

import mailer.accounts.passwords
import mailer.accounts.signin
from mailer.accounts.api_tokens import TokenScope, issue_token
from mailer.accounts.signin import LoginCandidate
from mailer.accounts.users import StaffUser, add_user
from mailer.cli.root import app as cli
from mailer.config import DatabaseSettings, Settings
from mailer.domain.errors import InputError
from mailer.domain.states import ReleaseStatus, Role
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store.db import transaction
from mailer.store.tables import Release, User, WebSession
from mailer.web import create_app
from mailer.web.limits import client_ip, parse_networks
from mailer.web.staff import preview as staff_preview
from tests.support.constants import FIXED_NOW, REPO
from tests.support.web import EMAILS, PASSWORD, csrf, make_users, seed_delivery, seed_release, sign_in

NEW_PASSWORD = "a brand new passphrase"


def app_with(rt: Runtime, clock: Callable[[], datetime] | None = None, **web: Any) -> Any:
    """The app on ``rt``'s database with ``web`` settings overridden."""
    settings = rt.settings.model_copy(update={"web": rt.settings.web.model_copy(update=web)})
    return create_app(settings, clock=clock or rt.clock)


def copy_of(client: TestClient, app: Any) -> TestClient:
    """A second browser holding a copy of ``client``'s cookies (a stolen cookie jar)."""
    thief = TestClient(app, follow_redirects=False)
    for name, value in client.cookies.items():
        thief.cookies.set(name, value)
    return thief


# ============================================================================ sessions


def test_cookie_captured_before_logout_is_refused_after(rt: Runtime) -> None:
    """A copy of the session cookie works while the session is open and is refused once its owner signs out."""
    make_users(rt, [Role.ADMIN])
    app = app_with(rt)
    client = sign_in(app, Role.ADMIN)
    thief = copy_of(client, app)
    assert thief.get("/").status_code == 200
    assert client.post("/logout", data={"csrftoken": csrf(client)}).status_code == 303
    response = thief.get("/")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    with transaction(rt.sessions) as session:
        [row] = session.scalars(select(WebSession)).all()
        assert row.revoked_at == FIXED_NOW and len(row.id_hash) == 64


def test_session_id_rotates_at_sign_in(rt: Runtime) -> None:
    """Signing in again gives a new session id; the earlier cookie is dead; only hashes are stored."""
    make_users(rt, [Role.VIEWER, Role.ADMIN])
    app = app_with(rt)
    client = sign_in(app, Role.VIEWER)
    before = copy_of(client, app)
    response = client.post(
        "/login", data={"email": EMAILS[Role.ADMIN], "password": PASSWORD, "next": "/", "csrftoken": csrf(client)}
    )
    assert response.status_code == 303
    assert client.cookies.get("mailer_session") != before.cookies.get("mailer_session")
    assert client.get("/").context["user"].email == EMAILS[Role.ADMIN]  # type: ignore[attr-defined]
    assert before.get("/").status_code == 303
    with transaction(rt.sessions) as session:
        rows = session.scalars(select(WebSession).order_by(WebSession.id)).all()
        assert [r.revoked_at is not None for r in rows] == [True, False]


def test_password_change_ends_every_other_session(rt: Runtime) -> None:
    """Changing the password (right current one) keeps this browser signed in with a new
    session, ends the others, and the new password is the one that works."""
    make_users(rt, [Role.VIEWER])
    app = app_with(rt)
    laptop, phone = sign_in(app, Role.VIEWER), sign_in(app, Role.VIEWER)
    assert laptop.get("/account/password").template.name == "staff/password.html"  # type: ignore[attr-defined]
    wrong = laptop.post(
        "/account/password",
        data={"current": "not it", "new": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrftoken": csrf(laptop)},
    )
    assert wrong.status_code == 401 and phone.get("/").status_code == 200
    mismatch = laptop.post(
        "/account/password",
        data={"current": PASSWORD, "new": NEW_PASSWORD, "confirm": "other", "csrftoken": csrf(laptop)},
    )
    assert mismatch.status_code == 422
    short = laptop.post(
        "/account/password", data={"current": PASSWORD, "new": "short", "confirm": "short", "csrftoken": csrf(laptop)}
    )
    assert short.status_code == 422 and "at least" in short.context["error"]  # type: ignore[attr-defined]
    done = laptop.post(
        "/account/password",
        data={"current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrftoken": csrf(laptop)},
    )
    assert done.status_code == 303
    assert laptop.get("/").status_code == 200
    assert phone.get("/").status_code == 303
    fresh = TestClient(app, follow_redirects=False)
    fresh.get("/login")
    old = fresh.post("/login", data={"email": EMAILS[Role.VIEWER], "password": PASSWORD, "csrftoken": csrf(fresh)})
    new = fresh.post("/login", data={"email": EMAILS[Role.VIEWER], "password": NEW_PASSWORD, "csrftoken": csrf(fresh)})
    assert (old.status_code, new.status_code) == (401, 303)


def test_cli_passwd_and_disable_end_open_sessions(rt: Runtime) -> None:
    """`mailer users passwd` and `mailer users disable` end the user's open sessions at once."""
    make_users(rt, [Role.VIEWER, Role.APPROVER])
    app = app_with(rt)
    viewer, approver = sign_in(app, Role.VIEWER), sign_in(app, Role.APPROVER)
    runner = CliRunner()
    env = {"MAILER_DATABASE__URL": rt.settings.database.url}
    changed = runner.invoke(
        cli, ["users", "passwd", EMAILS[Role.VIEWER], "--password-stdin"], input=NEW_PASSWORD + "\n", env=env
    )
    assert changed.exit_code == 0, changed.output
    assert "1 open session(s) ended" in changed.output
    assert viewer.get("/").status_code == 303 and approver.get("/").status_code == 200
    short = runner.invoke(cli, ["users", "passwd", EMAILS[Role.VIEWER], "--password-stdin"], input="short\n", env=env)
    assert isinstance(short.exception, InputError) and "at least" in str(short.exception)  # one line from main()
    assert runner.invoke(cli, ["users", "disable", EMAILS[Role.APPROVER]], env=env).exit_code == 0
    assert approver.get("/").status_code == 303


def test_session_expires_when_idle_and_at_its_end(rt: Runtime) -> None:
    """A session unused for longer than session_idle_minutes, or older than session_hours, is no session."""
    make_users(rt, [Role.VIEWER])
    now = [FIXED_NOW]
    app = app_with(rt, clock=lambda: now[0], session_idle_minutes=30, session_hours=1)
    client = sign_in(app, Role.VIEWER)
    for minutes in (20, 40, 59):  # each request within 30 minutes of the last one
        now[0] = FIXED_NOW + timedelta(minutes=minutes)
        assert client.get("/").status_code == 200, minutes
    now[0] = FIXED_NOW + timedelta(minutes=61)
    assert client.get("/").status_code == 303  # past session_hours
    client = sign_in(app, Role.VIEWER)
    now[0] += timedelta(minutes=31)
    assert client.get("/").status_code == 303  # idle


# ======================================================================= CSRF, Origin


def test_csrf_token_is_bound_to_the_session(rt: Runtime, tmp_path: Path) -> None:
    """A valid CSRF token of another session (or of no session) does not work in this one,
    even with a matching cookie planted beside it."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    make_users(rt, [Role.APPROVER, Role.VIEWER])
    app = app_with(rt)
    victim = sign_in(app, Role.APPROVER)
    attacker = sign_in(app, Role.VIEWER)
    anonymous = TestClient(app)
    anonymous.get("/login")
    url = f"/releases/{seeded.release_id}/actions/approve"
    for foreign in (csrf(attacker), csrf(anonymous)):
        victim.cookies.set("csrftoken", foreign)
        assert victim.post(url, data={"csrftoken": foreign}).status_code == 403
    with transaction(rt.sessions) as session:
        assert session.get(Release, seeded.release_id).status == "submitted"  # type: ignore[union-attr]
    page = victim.get(f"/releases/{seeded.release_id}")  # a page re-issues this session's token
    assert victim.post(url, data={"csrftoken": page.context["csrf_token"]}).status_code == 303  # type: ignore[attr-defined]


def test_state_changes_from_another_origin_are_refused(rt: Runtime) -> None:
    """An unsafe request whose Origin (or Referer) is another site, or "null", is 403;
    web.base_url's origin and the request's own host pass; so does a request with neither."""
    make_users(rt, [Role.VIEWER])
    app = app_with(rt, base_url="https://press.example.com")

    def browser() -> TestClient:
        client = TestClient(app, base_url="https://staff.example.com", follow_redirects=False)
        client.get("/login")
        return client

    anonymous = browser()
    login = {"email": EMAILS[Role.VIEWER], "password": PASSWORD, "csrftoken": csrf(anonymous)}
    assert anonymous.post("/login", data=login, headers={"Origin": "https://evil.example.net"}).status_code == 403
    assert anonymous.post("/login", data=login, headers={"Origin": "https://press.example.com"}).status_code == 303
    token = csrf(anonymous)
    for headers in (
        {"Origin": "https://evil.example.net"},
        {"Origin": "null"},
        {"Referer": "https://evil.example.net/page"},
        {"Origin": "https://press.example.com.evil.example.net"},
    ):
        assert anonymous.post("/logout", data={"csrftoken": token}, headers=headers).status_code == 403, headers
        assert anonymous.get("/").status_code == 200
    referer = {"Referer": "https://staff.example.com/releases"}
    assert anonymous.post("/logout", data={"csrftoken": token}, headers=referer).status_code == 303
    again = browser()
    again.post("/login", data={**login, "csrftoken": csrf(again)})
    assert again.post("/logout", data={"csrftoken": csrf(again)}).status_code == 303  # no Origin, no Referer


# ======================================================================= sign-in limits


def test_random_addresses_from_one_ip_hit_the_per_ip_limit(rt: Runtime) -> None:
    """Failures with ever-new addresses from one client fill the per-IP count; then even a
    right password from that IP is 429 (without a password check), a forged
    X-Forwarded-For does not help, and other limits are separate."""
    make_users(rt, [Role.ADMIN])
    app = app_with(rt, login_failures_per_ip=6)
    client = TestClient(app, follow_redirects=False)
    client.get("/login")
    for i in range(6):
        failed = client.post(
            "/login", data={"email": f"x{i}@example.org", "password": "guess", "csrftoken": csrf(client)}
        )
        assert failed.status_code == 401
    checks: list[tuple[LoginCandidate, str]] = []
    original = mailer.accounts.signin.check_password

    def counting(candidate: LoginCandidate, password: str) -> tuple[StaffUser | None, str | None]:
        checks.append((candidate, password))
        return original(candidate, password)

    try:
        mailer.accounts.signin.check_password = counting
        for forged in ("203.0.113.7", "198.51.100.9"):
            blocked = client.post(
                "/login",
                data={"email": EMAILS[Role.ADMIN], "password": PASSWORD, "csrftoken": csrf(client)},
                headers={"X-Forwarded-For": forged},
            )
            assert blocked.status_code == 429
            assert "from this network" in blocked.context["error"]  # type: ignore[attr-defined]
    finally:
        mailer.accounts.signin.check_password = original
    assert checks == []


def test_global_limit_stops_a_distributed_flood(rt: Runtime) -> None:
    """Failures from many addresses behind a trusted proxy fill the global per-minute count; then every try is 429."""
    make_users(rt, [Role.ADMIN])
    app = app_with(rt, login_failures_per_minute=5, trusted_proxies=["127.0.0.1"])
    client = TestClient(app, follow_redirects=False, client=("127.0.0.1", 40000))
    client.get("/login")
    for i in range(5):
        failed = client.post(
            "/login",
            data={"email": f"x{i}@example.org", "password": "guess", "csrftoken": csrf(client)},
            headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
        )
        assert failed.status_code == 401
    blocked = client.post(
        "/login",
        data={"email": EMAILS[Role.ADMIN], "password": PASSWORD, "csrftoken": csrf(client)},
        headers={"X-Forwarded-For": "192.0.2.50"},
    )
    assert blocked.status_code == 429 and "right now" in blocked.context["error"]  # type: ignore[attr-defined]


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 5000)})


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    """X-Forwarded-For counts only when the peer is a trusted proxy, and then only its nearest untrusted hop."""
    proxies = parse_networks(["10.0.0.0/8", "::1"])
    assert client_ip(_request("203.0.113.5", "1.2.3.4")) == "203.0.113.5"  # no proxies configured
    assert client_ip(_request("203.0.113.5", "1.2.3.4"), proxies) == "203.0.113.5"  # peer not trusted
    assert client_ip(_request("10.1.2.3", "1.2.3.4, 198.51.100.2"), proxies) == "198.51.100.2"
    assert client_ip(_request("10.1.2.3", "198.51.100.2, 10.9.9.9"), proxies) == "198.51.100.2"
    assert client_ip(_request("::1", "not-an-ip"), proxies) == "::1"
    assert client_ip(_request("10.1.2.3", None), proxies) == "10.1.2.3"


def test_trusted_proxies_setting_is_validated() -> None:
    """A trusted proxy that is not an address or network is a one-line settings error."""
    with pytest.raises(ValueError, match="not an IP address or network"):
        Settings(web={"trusted_proxies": ["proxy.example.com"]})


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a fresh SQLite file (for tests about SQLite's write lock)."""
    url = f"sqlite:///{tmp_path / 'mailer.db'}"
    engine = db.make_engine(DatabaseSettings(url=url))
    db.upgrade(engine)
    engine.dispose()
    settings = Settings(
        database=DatabaseSettings(url=url),
        secret_key="test-secret-key-of-enough-length-0123456789",
        paths={"templates_dir": REPO / "templates", "capture_maildir": tmp_path / "capture"},
    )
    runtime = Runtime.open(settings, clock=lambda: FIXED_NOW)
    try:
        yield runtime
    finally:
        runtime.close()


def test_no_write_lock_is_held_while_the_password_is_checked(sqlite_rt: Runtime, tmp_path: Path) -> None:
    """SQLite: while the Argon2 check runs, another connection can take the write lock
    at once (busy timeout 0), for a right password, a wrong one and an unknown address."""
    make_users(sqlite_rt, [Role.ADMIN])
    app = app_with(sqlite_rt)
    path = sqlite_rt.settings.database.url.removeprefix("sqlite:///")
    outcomes: list[str] = []

    class Probe:
        """Wraps the hasher: before each verify, try to write from another connection."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def _probe(self) -> None:
            conn = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                outcomes.append("free")
            except sqlite3.OperationalError as exc:
                outcomes.append(str(exc))
            finally:
                conn.close()

        def verify(self, *args: Any) -> Any:
            self._probe()
            return self.inner.verify(*args)

        def verify_and_update(self, *args: Any) -> Any:
            self._probe()
            return self.inner.verify_and_update(*args)

        def hash(self, *args: Any) -> Any:
            # the dummy hash is made on first use: in a process where no test made it yet, here
            return self.inner.hash(*args)

    original = mailer.accounts.passwords._HASHER
    mailer.accounts.passwords._HASHER = Probe(original)  # type: ignore[assignment]
    try:
        client = TestClient(app, follow_redirects=False)
        client.get("/login")
        for email, password in (
            (EMAILS[Role.ADMIN], "wrong"),
            ("nobody@example.com", "x"),
            (EMAILS[Role.ADMIN], PASSWORD),
        ):
            client.post("/login", data={"email": email, "password": password, "csrftoken": csrf(client)})
    finally:
        mailer.accounts.passwords._HASHER = original
    assert outcomes == ["free", "free", "free"]
    assert client.get("/").status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_login_flood_does_not_block_one_click_unsubscribes(sqlite_rt: Runtime, tmp_path: Path) -> None:
    """SQLite, a real `mailer web`: 24 threads post random addresses (and forged client
    addresses through a trusted proxy) to /login for 6 s while one-click POSTs run; every
    one-click answers 200, none takes more than 2 s, and the flood meets 429s."""
    seeded = [seed_delivery(sqlite_rt, email=f"reporter{i}@example.net") for i in range(40)]
    tokens = Tokens.from_settings(sqlite_rt.settings)
    links = [f"/u/{tokens.unsubscribe(s.delivery_id)}" for s in seeded]
    port = _free_port()
    secret = sqlite_rt.settings.secret_key
    assert secret is not None
    env = {
        **os.environ,
        "MAILER_DATABASE__URL": sqlite_rt.settings.database.url,
        "MAILER_SECRET_KEY": secret.get_secret_value(),
        "MAILER_WEB__HOST": "127.0.0.1",
        "MAILER_WEB__PORT": str(port),
        "MAILER_WEB__BASE_URL": f"http://127.0.0.1:{port}",
        "MAILER_WEB__TRUSTED_PROXIES": '["127.0.0.1"]',
        # Low enough that even a loaded machine reaches it within the flood's 6 s.
        "MAILER_WEB__LOGIN_FAILURES_PER_MINUTE": "20",
    }
    env.pop("MAILER_CONFIG", None)
    log = (tmp_path / "web.log").open("wb")  # a file, not a pipe: an unread pipe would stall the server
    server = subprocess.Popen([sys.executable, "-m", "mailer", "web"], env=env, cwd=tmp_path, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "mailer web did not start"
                time.sleep(0.1)
        stop = threading.Event()
        statuses: list[int] = []

        def flood(n: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as c:
                c.get("/login")
                token = c.cookies["csrftoken"]
                while not stop.is_set():
                    r = c.post(
                        "/login",
                        data={"email": f"{uuid.uuid4().hex[:10]}@example.org", "password": "guess", "csrftoken": token},
                        headers={"X-Forwarded-For": f"198.51.{n}.{len(statuses) % 250 + 1}"},
                    )
                    statuses.append(r.status_code)

        timings: list[tuple[int, float]] = []
        with ThreadPoolExecutor(24) as pool:
            for n in range(24):
                pool.submit(flood, n)
            time.sleep(0.5)
            with httpx.Client(base_url=base, timeout=30) as one_click:
                end = time.monotonic() + 6
                i = 0
                while time.monotonic() < end:
                    t0 = time.perf_counter()
                    r = one_click.post(links[i % len(links)], data={"List-Unsubscribe": "One-Click"})
                    timings.append((r.status_code, time.perf_counter() - t0))
                    i += 1
                    time.sleep(0.05)
            stop.set()
    finally:
        server.terminate()
        server.wait(15)
        log.close()
    server_log = (tmp_path / "web.log").read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-2000:]
    assert len(timings) >= 10
    assert all(code == 200 for code, _ in timings), timings
    assert max(t for _, t in timings) < 2.0, sorted(t for _, t in timings)[-5:]
    assert statuses.count(429) > 0 and set(statuses) <= {401, 429}


# ============================================================================ previews


def test_previews_are_rate_limited_per_user(rt: Runtime, tmp_path: Path) -> None:
    """Past previews_per_minute a user's previews (page or frame) are 429; another user is not affected."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    make_users(rt, [Role.VIEWER, Role.APPROVER])
    app = app_with(rt, previews_per_minute=3)
    viewer, approver = sign_in(app, Role.VIEWER), sign_in(app, Role.APPROVER)
    url = f"/releases/{seeded.release_id}/preview"
    codes = [viewer.get(url).status_code, viewer.get(url + "/frame").status_code, viewer.get(url).status_code]
    assert codes == [200, 200, 200]
    assert viewer.get(url).status_code == 429
    assert viewer.get(url + "/frame").status_code == 429
    assert approver.get(url).status_code == 200


def test_slow_previews_do_not_starve_one_click_unsubscribes(rt: Runtime, tmp_path: Path) -> None:
    """45 previews hanging at once against uvicorn (more than the default thread pool's
    40 threads) leave one-click unsubscribe answering at once; released, they all finish."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    delivery = seed_delivery(rt, email="night.desk@example.org")
    make_users(rt, [Role.VIEWER])
    app = app_with(rt, previews_per_minute=100)
    real_preview = getattr(staff_preview, "preview_release")  # noqa: B009  (the name the page calls)
    gate = threading.Event()

    def hanging_preview(*args: Any, **kwargs: Any) -> Any:
        gate.wait(60)
        return real_preview(*args, **kwargs)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    setattr(staff_preview, "preview_release", hanging_preview)  # noqa: B010
    stack = ExitStack()
    try:
        while not server.started:
            time.sleep(0.02)
        staff = stack.enter_context(httpx.Client(base_url=base, timeout=120, limits=httpx.Limits(max_connections=100)))
        staff.get("/login")
        staff.post(
            "/login", data={"email": EMAILS[Role.VIEWER], "password": PASSWORD, "csrftoken": staff.cookies["csrftoken"]}
        )
        url = f"/releases/{seeded.release_id}/preview/frame"
        with ThreadPoolExecutor(45) as pool:
            pending = [pool.submit(staff.get, url) for _ in range(45)]
            time.sleep(1.0)
            link = f"/u/{Tokens.from_settings(rt.settings).unsubscribe(delivery.delivery_id)}"
            t0 = time.perf_counter()
            try:
                answer: int | str = httpx.post(
                    base + link, data={"List-Unsubscribe": "One-Click"}, timeout=5
                ).status_code
            except httpx.TimeoutException:
                answer = "timed out"
            took = time.perf_counter() - t0
            gate.set()
            codes = [f.result().status_code for f in pending]
    finally:
        gate.set()
        stack.close()
        setattr(staff_preview, "preview_release", real_preview)  # noqa: B010
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert answer == 200
    assert took < 1.0, took
    assert codes == [200] * 45


# ========================================================================= impossible ids


def test_ids_no_row_can_have_are_404(rt: Runtime, tmp_path: Path) -> None:
    """Huge, zero, negative or non-numeric ids (and a NUL in an address) are 404 on staff pages and the API."""
    seed_release(rt, tmp_path)
    make_users(rt, [Role.ADMIN])
    app = app_with(rt)
    client = sign_in(app, Role.ADMIN)
    for bad in ("99999999999999999999", "2147483648", "0", "-1", "abc", "1e3", "１"):
        for suffix in ("", "/progress", "/preview", "/preview/frame", "/confirm/approve"):
            response = client.get(f"/releases/{bad}{suffix}")
            assert response.status_code == 404, (bad, suffix, response.text[:200])
        assert client.post(f"/releases/{bad}/actions/approve", data={"csrftoken": csrf(client)}).status_code == 404
    assert client.get("/contacts/a%00b@example.com").status_code == 404
    with transaction(rt.sessions) as session:
        add_user(session, "robot@example.com", role=Role.ADMIN, password=None, now=FIXED_NOW)
        token = issue_token(session, "robot@example.com", scope=TokenScope.WRITE)
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    for path in ("/api/releases/99999999999999999999", "/api/releases/abc/report", "/api/releases/0"):
        response = api.get(path)
        assert response.status_code == 404 and response.json() == {"detail": "not found"}, path
    assert api.post("/api/releases/99999999999999999999/pause").status_code == 404
    signed_out = TestClient(app, follow_redirects=False)
    assert signed_out.get("/releases/99999999999999999999").status_code == 404


# ============================================================================ API tokens


def token_for(rt: Runtime, role: Role, scope: TokenScope, expires_at: datetime | None = None) -> dict[str, str]:
    email = f"{role.value}-{scope.value}-{uuid.uuid4().hex[:6]}@example.com"
    with transaction(rt.sessions) as session:
        add_user(session, email, role=role, password=None, now=FIXED_NOW)
        token = issue_token(session, email, scope=scope, expires_at=expires_at)
    return {"Authorization": f"Bearer {token}"}


def test_token_scopes_and_expiry(rt: Runtime, tmp_path: Path) -> None:
    """A read token reads but cannot pause (403, nothing changes); a write token of an admin
    pauses and resumes; a viewer's write token is 403 by role; an expired token is 401."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SENDING)
    client = TestClient(app_with(rt))
    pause = f"/api/releases/{seeded.release_id}/pause"
    read = token_for(rt, Role.ADMIN, TokenScope.READ)
    assert client.get(f"/api/releases/{seeded.release_id}", headers=read).status_code == 200
    refused = client.post(pause, headers=read)
    assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
    with transaction(rt.sessions) as session:
        assert session.get(Release, seeded.release_id).status == "sending"  # type: ignore[union-attr]
    assert client.post(pause, headers=token_for(rt, Role.VIEWER, TokenScope.WRITE)).status_code == 403
    write = token_for(rt, Role.ADMIN, TokenScope.WRITE, expires_at=FIXED_NOW + timedelta(seconds=1))
    paused = client.post(pause, headers=write)
    assert paused.status_code == 200 and paused.json() == {"id": seeded.release_id, "status": "paused"}
    assert client.post(pause, headers=write).status_code == 409  # already paused
    resumed = client.post(f"/api/releases/{seeded.release_id}/resume", headers=write)
    assert resumed.json()["status"] == "sending"
    expired = token_for(rt, Role.ADMIN, TokenScope.WRITE, expires_at=FIXED_NOW)
    for method, path in (("GET", "/api/releases"), ("POST", pause)):
        response = client.request(method, path, headers=expired)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_token_cli_scope_and_expiry(rt: Runtime) -> None:
    """`mailer users token` takes --scope and --expires-in (default: read, 90 days); `users list` shows them; bad values are one line."""
    runner = CliRunner()
    env = {"MAILER_DATABASE__URL": rt.settings.database.url}
    with transaction(rt.sessions) as session:
        add_user(session, "bot@example.com", role=Role.ADMIN, password=None, now=FIXED_NOW)
    plain = runner.invoke(cli, ["users", "token", "bot@example.com"], env=env)
    assert plain.exit_code == 0 and plain.stdout.strip().startswith("mlr_")
    with transaction(rt.sessions) as session:
        row = session.scalar(select(User).where(User.email == "bot@example.com"))
        assert row is not None and row.api_token_scope == "read" and row.api_token_expires_at is not None
        left = row.api_token_expires_at - datetime.now(UTC)
        assert timedelta(days=90) - timedelta(minutes=5) < left <= timedelta(days=90)
    written = runner.invoke(
        cli, ["users", "token", "bot@example.com", "--scope", "write", "--expires-in", "0"], env=env
    )
    assert written.exit_code == 0, written.output
    listed = runner.invoke(cli, ["users", "list", "--json"], env=env)
    assert '"token_scope": "write"' in listed.stdout and '"token_expires_at": null' in listed.stdout
    for bad, says in ((["--scope", "admin"], "--scope"), (["--expires-in", "-1"], "--expires-in")):
        result = runner.invoke(cli, ["users", "token", "bot@example.com", *bad], env=env)
        assert isinstance(result.exception, InputError) and says in str(result.exception)  # one line from main()
