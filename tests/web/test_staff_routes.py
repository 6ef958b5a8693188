"""Staff pages through the test client, on SQLite and PostgreSQL: sign-in, sessions,
CSRF, rate limit, templates and their context, escaping, exports, the sandboxed preview.

The helpers (users, a signed-in client, a seeded release with deliveries and a bounce)
live in tests/support/web.py, shared with the role, API, browser and workflow tests.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from mailer.config import SmtpSettings
from mailer.domain.states import RETRYABLE_DELIVERY, DeliveryStatus, ReleaseStatus, Role, SuppressionReason
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.suppressions import add_suppression
from mailer.store.tables import Delivery, Proof, Release
from mailer.web import create_app
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, approved_release
from tests.support.faultsmtp import running_fault_server
from tests.support.web import EMAILS, PASSWORD, csrf, make_users, seed_release, sign_in

# ============================================================================ sign-in


def test_pages_redirect_to_login_when_signed_out(app: FastAPI) -> None:
    """Without a session every staff page redirects to /login with the page as ``next``."""
    client = TestClient(app, follow_redirects=False)
    for path in ("/", "/releases", "/log?status=failed", "/bounces", "/suppressions", "/log.csv"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2F"), path


def test_login_page_and_successful_login(app: FastAPI) -> None:
    """The login form renders; the right password starts a session and returns to ``next``."""
    client = TestClient(app, follow_redirects=False)
    page = client.get("/login?next=/releases")
    assert page.template.name == "staff/login.html"  # type: ignore[attr-defined]
    assert page.context["next"] == "/releases"  # type: ignore[attr-defined]
    assert page.context["user"] is None  # type: ignore[attr-defined]
    response = client.post(
        "/login",
        data={"email": EMAILS[Role.VIEWER], "password": PASSWORD, "next": "/releases", "csrftoken": csrf(client)},
    )
    assert response.status_code == 303 and response.headers["location"] == "/releases"
    cookie = response.headers["set-cookie"]
    assert "mailer_session=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    home = client.get("/")
    assert home.status_code == 200
    assert home.context["user"].email == EMAILS[Role.VIEWER]  # type: ignore[attr-defined]


def test_login_next_cannot_leave_the_site(app: FastAPI) -> None:
    """An absolute or scheme-relative ``next`` becomes ``/`` (no open redirect)."""
    client = TestClient(app, follow_redirects=False)
    client.get("/login")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post(
            "/login",
            data={"email": EMAILS[Role.ADMIN], "password": PASSWORD, "next": target, "csrftoken": csrf(client)},
        )
        assert response.headers["location"] == "/", target
        client.post("/logout", data={"csrftoken": csrf(client)})


def test_wrong_password_is_401_and_logged(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong password re-renders the form with 401 and logs the failure with the address."""
    client = TestClient(app, follow_redirects=False)
    client.get("/login")
    with caplog.at_level(logging.WARNING, logger="mailer.web.auth"):
        response = client.post(
            "/login", data={"email": EMAILS[Role.ADMIN], "password": "nope", "csrftoken": csrf(client)}
        )
    assert response.status_code == 401
    assert response.template.name == "staff/login.html"  # type: ignore[attr-defined]
    assert response.context["error"] == "Wrong address or password."  # type: ignore[attr-defined]
    assert any("login failed" in r.getMessage() and EMAILS[Role.ADMIN] in r.getMessage() for r in caplog.records)


def test_login_rate_limit_blocks_after_five_failures(app: FastAPI) -> None:
    """Five failures for one address and IP make the sixth try 429, even with the right password."""
    client = TestClient(app, follow_redirects=False)
    client.get("/login")
    for _ in range(5):
        failed = client.post(
            "/login", data={"email": EMAILS[Role.ADMIN], "password": "wrong", "csrftoken": csrf(client)}
        )
        assert failed.status_code == 401
    blocked = client.post("/login", data={"email": EMAILS[Role.ADMIN], "password": PASSWORD, "csrftoken": csrf(client)})
    assert blocked.status_code == 429
    assert "Too many" in blocked.context["error"]  # type: ignore[attr-defined]
    other = client.post("/login", data={"email": EMAILS[Role.VIEWER], "password": PASSWORD, "csrftoken": csrf(client)})
    assert other.status_code == 303  # another address is not blocked


def test_disabled_user_loses_the_session(rt: Runtime, app: FastAPI) -> None:
    """Disabling a user ends their open session at the next request."""
    from mailer.accounts.users import disable_user

    client = sign_in(app, Role.VIEWER)
    assert client.get("/").status_code == 200
    with transaction(rt.sessions) as session:
        disable_user(session, EMAILS[Role.VIEWER], now=FIXED_NOW)
    assert client.get("/").status_code == 303


def test_logout_ends_the_session(app: FastAPI) -> None:
    """POST /logout (with the CSRF token) signs out."""
    client = sign_in(app, Role.VIEWER)
    assert client.post("/logout", data={"csrftoken": csrf(client)}).status_code == 303
    assert client.get("/").status_code == 303


# ============================================================================== CSRF


def test_state_change_without_csrf_token_is_403(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A signed-in POST with no token, or a wrong one, is refused 403 and changes nothing."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    client = sign_in(app, Role.APPROVER)
    missing = client.post(f"/releases/{seeded.release_id}/actions/approve", data={})
    wrong = client.post(f"/releases/{seeded.release_id}/actions/approve", data={"csrftoken": "forged"})
    header_only_wrong = client.post(
        f"/releases/{seeded.release_id}/actions/approve", headers={"x-csrftoken": "forged"}, data={"a": "b"}
    )
    assert (missing.status_code, wrong.status_code, header_only_wrong.status_code) == (403, 403, 403)
    with transaction(rt.sessions) as session:
        assert session.get(Release, seeded.release_id).status == "submitted"  # type: ignore[union-attr]


def test_login_without_csrf_token_is_403(app: FastAPI) -> None:
    """The login form is CSRF-protected even before any cookie exists (login CSRF)."""
    client = TestClient(app, follow_redirects=False)
    response = client.post("/login", data={"email": EMAILS[Role.ADMIN], "password": PASSWORD})
    assert response.status_code == 403


def test_one_click_unsubscribe_needs_no_cookie_or_token(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """RFC 8058 one-click POST /u/{token} works with no cookie and no CSRF token, and
    also from a browser that carries a staff session."""
    seeded = seed_release(rt, tmp_path)
    with transaction(rt.sessions) as session:
        delivery_id = session.scalar(select(Delivery.id).where(Delivery.email == seeded.sent))
    assert delivery_id is not None
    link = f"/u/{Tokens.from_settings(rt.settings).unsubscribe(delivery_id)}"
    bare = TestClient(app, follow_redirects=False)
    response = bare.post(link, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    staff = sign_in(app, Role.VIEWER)
    assert staff.post(link, data={"List-Unsubscribe": "One-Click"}).status_code == 200


# ============================================================================= pages


def test_dashboard_context(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """The dashboard lists releases due soon, releases sending with progress, bounces and unsubscribes."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SENDING)
    due = approved_release(rt, [Variant("press-all", "list:press")], send_at=FIXED_NOW + timedelta(hours=2))
    with transaction(rt.sessions) as session:
        add_suppression(
            session, "ann@example.com", reason=SuppressionReason.UNSUBSCRIBED, source="one-click", now=FIXED_NOW
        )
    client = sign_in(app, Role.VIEWER)
    response = client.get("/")
    assert response.template.name == "staff/dashboard.html"  # type: ignore[attr-defined]
    ctx = response.context  # type: ignore[attr-defined]
    assert [r.id for r in ctx["due"]] == [due]
    [progress] = ctx["sending"]
    assert (progress.id, progress.total, progress.done, progress.percent) == (seeded.release_id, 3, 3, 100)
    assert [b.email for b in ctx["bounces"]] == [seeded.bounced]
    assert [s.email for s in ctx["unsubscribes"]] == ["ann@example.com"]
    fragment = client.get("/fragments/sending")
    assert fragment.template.name == "staff/_sending.html"  # type: ignore[attr-defined]
    assert 'hx-trigger="every 2s"' in fragment.text


def test_release_list_and_detail(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """The list shows the release; the detail has per-segment counts, progress, chart and no actions for a viewer."""
    seeded = seed_release(rt, tmp_path)
    client = sign_in(app, Role.VIEWER)
    listing = client.get("/releases")
    assert listing.template.name == "staff/releases.html"  # type: ignore[attr-defined]
    assert [r.id for r in listing.context["page"].rows] == [seeded.release_id]  # type: ignore[attr-defined]
    detail = client.get(f"/releases/{seeded.release_id}")
    assert detail.template.name == "staff/release.html"  # type: ignore[attr-defined]
    ctx = detail.context  # type: ignore[attr-defined]
    assert ctx["report"].segments == {"press-all": {"sent": 2, "failed": 1}}
    assert ctx["progress"].percent == 100
    assert ctx["actions"] == []
    assert ctx["chart"] is not None and ctx["chart"].total == 2 and len(ctx["chart"].bars) == 2
    assert {p.status for p in ctx["parts"]} == {"sent", "failed"}
    assert '<svg id="sent-chart"' in detail.text
    assert client.get("/releases/999999").status_code == 404


def test_security_headers_on_staff_pages(app: FastAPI) -> None:
    """Staff pages carry a CSP without inline script, no framing and nosniff."""
    client = sign_in(app, Role.VIEWER)
    headers = client.get("/").headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"


def test_preview_is_sandboxed(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """The preview page frames the message in <iframe sandbox>; the frame route itself
    answers with CSP sandbox, so the message's HTML can never run script in our origin."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    client = sign_in(app, Role.APPROVER)
    page = client.get(f"/releases/{seeded.release_id}/preview?segment=press-all&contact=bob@example.net")
    assert page.template.name == "staff/preview.html"  # type: ignore[attr-defined]
    assert page.context["segment"] == "press-all"  # type: ignore[attr-defined]
    assert page.context["preview"].to_addr == "bob@example.net"  # type: ignore[attr-defined]
    assert '<iframe id="preview-frame" title="HTML part" sandbox=""' in page.text
    frame = client.get(f"/releases/{seeded.release_id}/preview/frame?segment=press-all")
    assert frame.status_code == 200 and "<html" in frame.text.lower()
    assert frame.headers["content-security-policy"].startswith("sandbox;")
    assert "script-src" not in frame.headers["content-security-policy"]
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"


def test_log_filters_and_keyset_pages(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """The log filters by status, domain, segment, email and time, and pages by id with after/before."""
    seeded = seed_release(rt, tmp_path)
    client = sign_in(app, Role.VIEWER)
    failed = client.get(f"/log?status=failed&release={seeded.release_id}")
    assert failed.template.name == "staff/log.html"  # type: ignore[attr-defined]
    assert [r.email for r in failed.context["page"].rows] == [seeded.bounced]  # type: ignore[attr-defined]
    assert failed.context["form"]["status"] == "failed"  # type: ignore[attr-defined]
    by_domain = client.get("/log?domain=EXAMPLE.NET").context["page"].rows  # type: ignore[attr-defined]
    assert [r.email for r in by_domain] == ["bob@example.net"]
    assert len(client.get("/log?segment=press-all").context["page"].rows) == 3  # type: ignore[attr-defined]
    assert [r.email for r in client.get("/log?email=bob").context["page"].rows] == ["bob@example.net"]  # type: ignore[attr-defined]
    late = client.get("/log?since=2026-11-25T09:01").context["page"].rows  # type: ignore[attr-defined]
    assert [r.email for r in late] == ["bob@example.net", "gone@example.org"]
    bad = client.get("/log?since=yesterday&status=nonsense")
    assert bad.status_code == 200 and "since" in bad.context["error"]  # type: ignore[attr-defined]

    import mailer.web.staff.log as log_pages

    pages_size = getattr(log_pages, "PAGE_SIZE")  # noqa: B009  (the name the log page reads)
    setattr(log_pages, "PAGE_SIZE", 2)  # noqa: B010
    try:
        first = client.get("/log").context["page"]  # type: ignore[attr-defined]
        assert len(first.rows) == 2 and first.next_after == first.rows[-1].id and first.prev_before is None
        second = client.get(f"/log?after={first.next_after}").context["page"]  # type: ignore[attr-defined]
        assert [r.email for r in second.rows] == [seeded.bounced] and second.next_after is None
        back = client.get(f"/log?before={second.prev_before}").context["page"]  # type: ignore[attr-defined]
        assert [r.id for r in back.rows] == [r.id for r in first.rows]
    finally:
        setattr(log_pages, "PAGE_SIZE", pages_size)  # noqa: B010


def test_contact_history_escapes_the_raw_bounce(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A contact's page lists deliveries, the bounce with its diagnostic and raw message
    (escaped inside <pre>), and the suppression."""
    seeded = seed_release(rt, tmp_path)
    client = sign_in(app, Role.VIEWER)
    response = client.get(f"/contacts/{seeded.bounced}")
    assert response.template.name == "staff/contact.html"  # type: ignore[attr-defined]
    history = response.context["history"]  # type: ignore[attr-defined]
    assert [d.status for d in history.deliveries] == ["failed"]
    assert [e.kind for e in history.events] == ["bounced"]
    assert [(s.reason, s.scope) for s in history.suppressions] == [("hard_bounce", "*")]
    assert "<script>alert" not in response.text
    assert '<pre class="raw">From: MAILER-DAEMON' in response.text
    assert "&lt;script&gt;alert(&#39;raw&#39;)&lt;/script&gt;" in response.text
    assert "&lt;b&gt;user unknown&lt;/b&gt;" in response.text
    assert client.get("/contacts/nobody@example.com").status_code == 404


def test_user_input_is_escaped_everywhere(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """A release title and a search term full of markup come back as text."""
    seeded = seed_release(rt, tmp_path)
    with transaction(rt.sessions) as session:
        session.execute(update(Release).values(title="<img src=x onerror=alert(1)>"))
    client = sign_in(app, Role.VIEWER)
    detail = client.get(f"/releases/{seeded.release_id}").text
    assert "<img src=x" not in detail and "&lt;img src=x onerror=alert(1)&gt;" in detail
    log_page = client.get("/log", params={"email": '"><script>x</script>'}).text
    assert "<script>x</script>" not in log_page


def test_bounces_and_suppressions_lists(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """Bounces and suppressions are listed, newest first, and filter by kind / reason."""
    seeded = seed_release(rt, tmp_path)
    client = sign_in(app, Role.VIEWER)
    bounces = client.get("/bounces?kind=bounced")
    assert bounces.template.name == "staff/bounces.html"  # type: ignore[attr-defined]
    assert [b.email for b in bounces.context["page"].rows] == [seeded.bounced]  # type: ignore[attr-defined]
    sups = client.get("/suppressions?reason=hard_bounce")
    assert sups.template.name == "staff/suppressions.html"  # type: ignore[attr-defined]
    assert [s.email for s in sups.context["page"].rows] == [seeded.bounced]  # type: ignore[attr-defined]
    assert client.get("/suppressions?reason=unsubscribed").context["page"].rows == []  # type: ignore[attr-defined]


def test_csv_exports_are_filtered_and_formula_safe(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """CSV of the filtered log, bounces and suppressions; a cell starting with = is prefixed with '."""
    seeded = seed_release(rt, tmp_path)
    with transaction(rt.sessions) as session:
        session.execute(update(Delivery).where(Delivery.email == seeded.bounced).values(last_reply="=HYPERLINK(1)"))
    client = sign_in(app, Role.VIEWER)
    response = client.get(f"/log.csv?status=failed&release={seeded.release_id}")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["email"] for r in rows] == [seeded.bounced]
    assert rows[0]["last_reply"] == "'=HYPERLINK(1)"
    assert len(list(csv.DictReader(io.StringIO(client.get("/log.csv").text)))) == 3
    bounces = list(csv.DictReader(io.StringIO(client.get("/bounces.csv").text)))
    assert [b["email"] for b in bounces] == [seeded.bounced]
    sups = list(csv.DictReader(io.StringIO(client.get("/suppressions.csv?reason=hard_bounce").text)))
    assert [s["email"] for s in sups] == [seeded.bounced]


def test_approve_through_confirmation(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """An approver opens the confirmation page, confirms, and lands on the approved release with a message."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    client = sign_in(app, Role.APPROVER)
    detail = client.get(f"/releases/{seeded.release_id}")
    assert detail.context["actions"] == ["approve"]  # type: ignore[attr-defined]
    confirm = client.get(f"/releases/{seeded.release_id}/confirm/approve")
    assert confirm.template.name == "staff/confirm.html"  # type: ignore[attr-defined]
    assert confirm.context["action"] == "approve"  # type: ignore[attr-defined]
    done = client.post(f"/releases/{seeded.release_id}/actions/approve", data={"csrftoken": csrf(client)})
    assert done.status_code == 303 and done.headers["location"] == f"/releases/{seeded.release_id}"
    after = client.get(f"/releases/{seeded.release_id}")
    assert after.context["release"].status == "approved"  # type: ignore[attr-defined]
    assert after.context["flash"][0][1].startswith("approved")  # type: ignore[attr-defined]


def test_workflow_refusal_is_409_with_the_reason(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """Approving a release that is not submitted answers 409 on the release page, saying why."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.DRAFT)
    client = sign_in(app, Role.ADMIN)
    response = client.post(f"/releases/{seeded.release_id}/actions/approve", data={"csrftoken": csrf(client)})
    assert response.status_code == 409
    assert response.template.name == "staff/release.html"  # type: ignore[attr-defined]
    assert "draft release cannot become approved" in response.context["error"]  # type: ignore[attr-defined]


def test_schedule_sets_send_time(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """Scheduling from the form stores send_at (a datetime-local value is UTC); a bad value is 422."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.DRAFT)
    client = sign_in(app, Role.PUBLICIST)
    url = f"/releases/{seeded.release_id}/actions/schedule"
    assert client.post(url, data={"csrftoken": csrf(client), "send_at": "2026-12-01T14:30"}).status_code == 303
    with transaction(rt.sessions) as session:
        release = session.get(Release, seeded.release_id)
        assert release is not None and release.send_at == FIXED_NOW.replace(month=12, day=1, hour=14, minute=30)
    assert client.post(url, data={"csrftoken": csrf(client), "send_at": "soon"}).status_code == 422


def test_proof_action_sends_through_smtp_and_says_so(rt: Runtime, tmp_path: Path) -> None:
    """A publicist's proof from the release page reaches a real SMTP server, is recorded, and is flashed."""
    make_users(rt, [Role.PUBLICIST])
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.DRAFT)
    with running_fault_server() as server:
        smtp = SmtpSettings(host=server.host, port=server.port)
        client = sign_in(create_app(rt.settings.model_copy(update={"smtp": smtp}), clock=rt.clock), Role.PUBLICIST)
        url = f"/releases/{seeded.release_id}/actions/proof"
        done = client.post(url, data={"csrftoken": csrf(client), "segment": "press-all"})
        assert done.status_code == 303, done.text
        assert server.wait_for_accepted(1, timeout=5)
        accepted = server.accepted[0]
    assert accepted.recipient == EMAILS[Role.PUBLICIST]
    after = client.get(f"/releases/{seeded.release_id}")
    level, text = after.context["flash"][0]  # type: ignore[attr-defined]
    assert level == "ok" and text.startswith(f"proof of press-all to {EMAILS[Role.PUBLICIST]}: sent (250")
    with transaction(rt.sessions) as session:
        proof = session.scalars(select(Proof)).one()
        assert (proof.release_id, proof.message_id) == (seeded.release_id, accepted.message_id)


def test_cancel_of_a_sending_release_cancels_its_pending_rows(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """Cancelling a sending release from its page cancels its queued rows and says how many."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SENDING)
    with transaction(rt.sessions) as session:
        session.execute(
            update(Delivery).where(Delivery.email == seeded.sent).values(status=DeliveryStatus.QUEUED.value)
        )
    client = sign_in(app, Role.ADMIN)
    done = client.post(f"/releases/{seeded.release_id}/actions/cancel", data={"csrftoken": csrf(client)})
    assert done.status_code == 303, done.text
    after = client.get(f"/releases/{seeded.release_id}")
    assert after.context["release"].status == "cancelled"  # type: ignore[attr-defined]
    assert after.context["flash"][0][1] == "cancelled; 1 pending deliveries will not be sent"  # type: ignore[attr-defined]
    with transaction(rt.sessions) as session:
        assert session.scalar(select(Delivery.status).where(Delivery.email == seeded.sent)) == "cancelled"


def test_retry_offers_every_retryable_delivery_state(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """The retry confirmation offers exactly the states a retry may requeue (deferred included), and requeues a deferred row."""
    seeded = seed_release(rt, tmp_path)
    with transaction(rt.sessions) as session:
        row = session.scalars(select(Delivery).where(Delivery.email == seeded.sent)).one()
        row.status = DeliveryStatus.DEFERRED.value
    client = sign_in(app, Role.ADMIN)
    page = client.get(f"/releases/{seeded.release_id}/confirm/retry")
    offered = page.context["retry_statuses"]  # type: ignore[attr-defined]
    assert sorted(offered) == sorted(s.value for s in RETRYABLE_DELIVERY)
    done = client.post(
        f"/releases/{seeded.release_id}/actions/retry",
        data={"statuses": ["deferred"], "csrftoken": csrf(client)},
    )
    assert done.status_code == 303
    with transaction(rt.sessions) as session:
        assert session.scalars(select(Delivery.status).where(Delivery.email == seeded.sent)).one() == "queued"
