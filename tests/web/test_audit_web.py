"""The audit log in the web app: sign-ins and failures, exports, approvals with the
client IP; the admins' page and its CSV; other roles refused."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from mailer.domain.states import ReleaseStatus, Role
from mailer.runtime import Runtime
from mailer.store import audit
from mailer.store.audit import AuditLine
from mailer.store.ledger.paging import read_only
from tests.support.web import EMAILS, csrf, seed_release, sign_in


def entries(rt: Runtime) -> list[AuditLine]:
    with read_only(rt.sessions) as session:
        return list(reversed(audit.audit_page(session, limit=500).rows))


def test_sign_in_failure_and_success_are_recorded_with_the_ip(app: FastAPI, rt: Runtime) -> None:
    """A wrong password and then a sign-in each leave an entry naming the address and the client."""
    client = TestClient(app, follow_redirects=False)
    client.get("/login")
    email = EMAILS[Role.VIEWER]
    bad = client.post("/login", data={"email": email, "password": "nope", "next": "/", "csrftoken": csrf(client)})
    assert bad.status_code == 401
    sign_in(app, Role.VIEWER)
    got = [(e.actor, e.action, e.ip) for e in entries(rt)]
    assert got == [(email, "signin_failed", "testclient"), (email, "signin", "testclient")]


def test_exports_and_approvals_are_recorded(app: FastAPI, rt: Runtime, tmp_path: Path) -> None:
    """A CSV download and an approval made in the browser are in the log with actor, target and IP."""
    seeded = seed_release(rt, tmp_path, status=ReleaseStatus.SUBMITTED)
    approver = sign_in(app, Role.APPROVER)
    assert approver.get("/suppressions.csv?reason=hard_bounce").status_code == 200
    done = approver.post(f"/releases/{seeded.release_id}/actions/approve", data={"csrftoken": csrf(approver)})
    assert done.status_code == 303
    log = [e for e in entries(rt) if e.action != "signin"]
    assert [(e.actor, e.action, e.target, e.ip) for e in log] == [
        (EMAILS[Role.APPROVER], "export", "/suppressions.csv?reason=hard_bounce", "testclient"),
        (EMAILS[Role.APPROVER], "release.approve", f"release {seeded.release_id}", "testclient"),
    ]


def test_admins_see_and_export_the_log_others_are_refused(app: FastAPI, rt: Runtime) -> None:
    """/admin/audit lists entries for admins (filtered by action), its CSV too; a publicist gets 403."""
    publicist = sign_in(app, Role.PUBLICIST)
    assert publicist.get("/admin/audit").status_code == 403
    assert publicist.get("/admin/audit.csv").status_code == 403
    admin = sign_in(app, Role.ADMIN)
    page = admin.get("/admin/audit?action=signin")
    assert page.status_code == 200
    assert page.template.name == "staff/audit.html"  # type: ignore[attr-defined]
    shown = [(e.actor, e.action) for e in page.context["page"].rows]  # type: ignore[attr-defined]
    assert shown == [(EMAILS[Role.ADMIN], "signin"), (EMAILS[Role.PUBLICIST], "signin")]
    rows = list(csv.DictReader(io.StringIO(admin.get("/admin/audit.csv").text)))
    assert {r["action"] for r in rows} == {"signin"}
    assert entries(rt)[-1].action == "export" and entries(rt)[-1].target == "/admin/audit.csv"
