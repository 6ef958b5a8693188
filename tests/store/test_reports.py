"""`mailer report` (text and JSON) and the staff release page count hard bounces, soft
bounces, complaints (with the rate against Gmail's 0.3% line) and refusals of our own
sender apart."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select
from typer.testing import CliRunner

from mailer.cli import app as cli_app
from mailer.domain.states import Role, email_hash
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.ledger.report import problem_counts
from mailer.store.tables import Contact, Delivery, DeliveryEvent, Release
from tests.support.engine import Variant, add_contacts, approved_release
from tests.support.web import sign_in

#: (status, reason, events as (kind, detail)) per contact
ROWS: list[tuple[str, str | None, list[tuple[str, str]]]] = [
    ("sent", None, []),
    ("sent", None, []),
    ("sent", None, [("complained", "abuse report")]),
    ("sent", None, [("requeued", "sender_rejected: 553 5.1.8 <bounces+x@bounces.example.com>: Domain not found")]),
    ("failed", "hard_bounce", [("failed", "550 5.1.1 No such user")]),
    ("bounced", "user_unknown", [("bounced", "5.1.1 smtp; 550 user unknown")]),
    ("bounced", "mailbox_full", [("bounced", "5.2.2 smtp; 552 Over quota")]),
    ("failed", "gave up retrying", [("failed", "451 4.3.0 try later")]),
    ("queued", "sender_auth", [("deferred", "sender_auth: 550 5.7.26 DMARC"), ("deferred", "sender_auth: again")]),
    ("failed", "render_error", []),
]
EXPECTED = {
    "hard_bounces": 2,
    "soft_bounces": 2,
    "complaints": 1,
    "delivered": 4,
    "complaint_rate": 0.25,
    "complaint_rate_high": True,
    "sender_refusals": 2,
    "sender_refusal_events": 3,
}


def seed(rt: Runtime, tmp_path: Path) -> int:
    """A release with one delivery per line of :data:`ROWS`, and another release whose rows must not count."""
    emails = [f"p{i}@example.com" for i in range(len(ROWS))]
    add_contacts(rt, tmp_path, emails)
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    other = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as session:
        contacts = {c.email: c.id for c in session.scalars(select(Contact))}
        for release_id in (rid, other):
            for i, (status, reason, events) in enumerate(ROWS if release_id == rid else ROWS[4:]):
                email = emails[i]
                row = Delivery(
                    release_id=release_id,
                    contact_id=contacts[email],
                    email=email,
                    email_hash=email_hash(email),
                    domain="example.com",
                    status=status,
                    reason=reason,
                    message_id=f"<{release_id}.{i}@mail.example.com>",
                    updated_at=rt.clock(),
                )
                session.add(row)
                session.flush()
                for kind, detail in events:
                    session.add(DeliveryEvent(delivery_id=row.id, kind=kind, detail=detail, at=rt.clock()))
        session.get(Release, rid).status = "sent"  # type: ignore[union-attr]
    return rid


def test_report_counts_each_problem_apart(rt: Runtime, tmp_path: Path) -> None:
    """report --json carries the problem counts; the text report prints them with the complaint-rate flag."""
    rid = seed(rt, tmp_path)
    env = {"MAILER_DATABASE__URL": rt.settings.database.url}
    data = json.loads(CliRunner().invoke(cli_app, ["report", str(rid), "--json"], env=env).stdout)
    assert data["problems"] == EXPECTED
    text = CliRunner().invoke(cli_app, ["report", str(rid)], env=env, terminal_width=200).stdout
    assert "hard bounces: 2" in text and "soft bounces: 2" in text
    assert "complaints: 1 (25.00% of 4 delivered; above Gmail's 0.3% line)" in text
    assert "sender-side refusals (our fault, no recipient blamed): 2 deliveries, 3 refusals" in text


def test_complaint_rate_under_the_line_and_before_any_delivery(rt: Runtime, tmp_path: Path) -> None:
    """No complaint among delivered rows is 0 % and not flagged; nothing delivered yet is no rate at all."""
    add_contacts(rt, tmp_path, ["a@example.com"])
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as session:
        empty = problem_counts(session, rid)
    assert empty.complaint_rate is None and empty.complaint_rate_high is False
    assert sum(v for k, v in asdict(empty).items() if k.endswith(("bounces", "complaints", "refusals"))) == 0


def test_release_page_shows_the_problems(rt: Runtime, app: FastAPI, tmp_path: Path) -> None:
    """The staff release page has the same counts in its context and flags the complaint rate."""
    rid = seed(rt, tmp_path)
    client = sign_in(app, Role.VIEWER)
    page = client.get(f"/releases/{rid}")
    assert page.status_code == 200
    assert asdict(page.context["problems"]) == EXPECTED  # type: ignore[attr-defined]
    assert 'id="complaint-rate-high"' in page.text
    assert "25.00% of 4 delivered" in page.text
