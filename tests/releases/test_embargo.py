"""Embargoes the system enforces: refused before send_at, shown per recipient zone in the
subject and both parts, contacts not embargo_ok left out (and in the ledger), shown to
the approver."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi import FastAPI

from mailer.audience import contacts
from mailer.config import Settings
from mailer.domain.embargo import parse_embargo
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import DeliveryStatus, ReleaseStatus, Role
from mailer.engine.dispatch import Dispatcher
from mailer.message import Renderer
from mailer.releases import workflow
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.deliveries import EMBARGO_REASON
from mailer.store.ledger.history import contact_history
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, approved_release, deliveries
from tests.support.fake_transport import FakeTransport
from tests.support.releases import RELEASE, create, seed, submit
from tests.support.web import sign_in

NEW_YORK = "2027-12-01 09:00 America/New_York"
PEOPLE = """\
email,first_name,beats,timezone,embargo_ok
lon@paper.example.com,Lena,politics,Europe/London,
tyo@paper.example.com,Taro,politics,Asia/Tokyo,true
any@paper.example.com,Avi,politics,,
leaky@paper.example.com,Lou,politics,Europe/Paris,false
"""


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return renderer_for(settings)


def test_an_embargo_before_send_at_is_refused_at_create(rt: Runtime, renderer: Renderer, tmp_path: Path) -> None:
    """A release file whose embargo lifts before its send_at is refused, naming the embargo."""
    seed(rt, tmp_path)
    text = RELEASE.replace("embargo = 2027-12-01T10:00:00-05:00", 'embargo = "2027-12-01 08:00 America/New_York"')
    with pytest.raises(InputError, match="embargo: embargo 2027-12-01 13:00 UTC is earlier than send_at"):
        create(rt, renderer, text)


def test_submit_refuses_an_embargo_that_a_new_send_time_overtook(
    rt: Runtime, renderer: Renderer, tmp_path: Path
) -> None:
    """A release rescheduled after its embargo cannot be submitted; it stays draft."""
    seed(rt, tmp_path)
    rid = create(rt, renderer)
    with transaction(rt.sessions) as session:
        workflow.schedule(session, rid, at=datetime(2027, 12, 1, 18, 0, tzinfo=UTC), actor="pat", now=rt.clock())
    with pytest.raises(WorkflowError, match="is earlier than send_at 2027-12-01 18:00 UTC"):
        submit(rt, renderer, rid)
    with transaction(rt.sessions) as session:
        assert release_store.get_release(session, rid).status == ReleaseStatus.DRAFT.value


def _message(raw: bytes) -> tuple[str, str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return str(msg["Subject"]), str(text.get_content()), str(html.get_content())


async def test_each_recipient_sees_the_embargo_in_their_zone_and_untrusted_are_left_out(
    rt: Runtime, tmp_path: Path
) -> None:
    """London, Tokyo and zone-less contacts each get their own embargo line (subject, text,
    HTML) plus UTC; the contact marked embargo_ok = false is excluded with the reason."""
    csv = tmp_path / "people.csv"
    csv.write_text(PEOPLE, "utf-8")
    assert contacts.import_csv(rt.sessions, csv, list_slug="press", now=FIXED_NOW).rejected == []
    embargo = parse_embargo(NEW_YORK)
    rid = approved_release(rt, [Variant("everyone", "list:press")], embargo=embargo)
    fake = FakeTransport()
    await Dispatcher(rt, fake).run_once()
    got = {sent.recipient: _message(sent.data) for sent in fake.sent}
    assert sorted(got) == ["any@paper.example.com", "lon@paper.example.com", "tyo@paper.example.com"]
    expect = {
        "lon@paper.example.com": ("1 Dec 14:00 GMT / 14:00 UTC", "1 December 2027, 14:00 GMT (Europe/London)"),
        "tyo@paper.example.com": ("1 Dec 23:00 JST / 14:00 UTC", "1 December 2027, 23:00 JST (Asia/Tokyo)"),
        "any@paper.example.com": ("1 Dec 09:00 EST / 14:00 UTC", "1 December 2027, 09:00 EST (America/New_York)"),
    }
    for address, (short, local) in expect.items():
        subject, text, html = got[address]
        assert subject.startswith(f"[EMBARGOED until {short}] ")
        line = f"EMBARGOED UNTIL {local} / 1 December 2027, 14:00 UTC"
        flat = " ".join(text.split())  # the text part is wrapped at 78 columns (issue 14)
        assert line in flat and flat.index(line) < flat.index("Annual maritime security report")
        assert '<p class="embargo"' in html and f"EMBARGOED until {local} / 1 December 2027, 14:00 UTC" in html
    rows = deliveries(rt, rid)
    leaky = rows["leaky@paper.example.com"]
    assert (leaky.status, leaky.reason) == (DeliveryStatus.EXCLUDED.value, EMBARGO_REASON)
    with transaction(rt.sessions) as session:
        history = contact_history(session, "leaky@paper.example.com")
        assert history is not None and [d.status for d in history.deliveries] == ["excluded"]
        assert release_store.get_release(session, rid).status == ReleaseStatus.SENT.value


async def test_after_the_lift_nobody_is_left_out(rt: Runtime, tmp_path: Path) -> None:
    """A release planned after its embargo lifted goes to contacts not embargo_ok too."""
    csv = tmp_path / "people.csv"
    csv.write_text(PEOPLE, "utf-8")
    contacts.import_csv(rt.sessions, csv, list_slug="press", now=FIXED_NOW)
    rid = approved_release(rt, [Variant("everyone", "list:press")], embargo=parse_embargo("2026-11-01 09:00 UTC"))
    fake = FakeTransport()
    await Dispatcher(rt, fake).run_once()
    assert "leaky@paper.example.com" in fake.recipients()
    assert {r.status for r in deliveries(rt, rid).values()} == {"sent"}


def test_the_approver_sees_the_embargo_first(rt: Runtime, app: FastAPI, tmp_path: Path, renderer: Renderer) -> None:
    """The approval confirmation page and the release page show the embargo in its zone and UTC."""
    seed(rt, tmp_path)
    text = RELEASE.replace("embargo = 2027-12-01T10:00:00-05:00", f'embargo = "{NEW_YORK}"').replace(
        'send_at = "2027-12-01T09:00:00-05:00"', 'send_at = "2027-12-01T08:00:00-05:00"'
    )
    rid = create(rt, renderer, text)
    submit(rt, renderer, rid)
    approver = sign_in(app, Role.APPROVER)
    shown = "EMBARGOED until 1 December 2027, 09:00 EST (America/New_York) / 1 December 2027, 14:00 UTC"
    for path in (f"/releases/{rid}/confirm/approve", f"/releases/{rid}"):
        page = approver.get(path)
        assert page.status_code == 200
        assert page.context["embargo"] in shown  # type: ignore[attr-defined]
        assert f'<p id="embargo" class="embargo-banner">{shown}</p>' in page.text
