"""Helpers for the conversation tests (corrections, withdrawals, follow-ups, the cadence
cap, local-hour delivery, history segments): an original release sent through the fake
transport with every kind of outcome, a linked release taken through submit and
approval, and a local-hour release to contacts in four zones."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import update

from mailer.audience import contacts
from mailer.domain.embargo import Embargo
from mailer.domain.states import SuppressionReason
from mailer.engine.dispatch import Dispatcher
from mailer.releases import workflow
from mailer.releases.approval import approve_release, submit_release
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.bounces import mark_delivery_bounced
from mailer.store.db import transaction
from mailer.store.suppressions import add_suppression
from mailer.store.tables import Contact, Release
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, add_contacts, approved_release, deliveries
from tests.support.fake_transport import FakeTransport

EVERYONE = [Variant("press-all", "list:press")]
#: got the original (sent)
GOT = "got@example.com"
#: the connection died after the data: may hold the original (unknown)
MAYBE = "maybe@example.com"
#: refused at RCPT: never reached
REFUSED = "refused@example.com"
#: sent, then a bounce notice came back
BOUNCED = "bounced@example.com"
#: sent, then unsubscribed
LEFT = "left@example.com"
ORIGINAL_AUDIENCE = [GOT, MAYBE, REFUSED, BOUNCED, LEFT]
#: added to the list after the original went out
LATE = "late@example.com"

CORRECTION = """\
+++
subject = "Harbor Institute report: corrected figures"
+++
The figure on page 3 is **12 %**, not 21 %. Details: <https://harbor.example.org/report>.
"""


async def sent_original(ert: Runtime, tmp_path: Path, fake: FakeTransport, *, embargo: Embargo | None = None) -> int:
    """The original release (``embargo``: embargoed until then) to five journalists, sent
    through ``fake``: one sent, one unknown, one refused, one bounced later, one
    unsubscribed later; then a contact joins the list. Returns the original's id."""
    add_contacts(ert, tmp_path, ORIGINAL_AUDIENCE)
    rid = approved_release(ert, EVERYONE, embargo=embargo)
    fake.lose_after_data(MAYBE, times=1)
    fake.reply(REFUSED, 550, "5.1.1 No such user", stage="rcpt", times=1)
    await Dispatcher(ert, fake).run_once()
    rows = deliveries(ert, rid)
    with transaction(ert.sessions) as session:
        mark_delivery_bounced(
            session, rows[BOUNCED].id, reason="mailbox_unknown", code=550, reply="no such user", now=ert.clock()
        )
        add_suppression(session, LEFT, reason=SuppressionReason.UNSUBSCRIBED, source="test", now=ert.clock())
    add_contacts(ert, tmp_path, [LATE], list_slug="press")
    return rid


def approve(ert: Runtime, release_id: int, *, author: str = "pat", approver: str = "approver2") -> None:
    """Submit (as ``author``) and approve (as ``approver``) a draft."""
    renderer = renderer_for(ert.settings)
    with transaction(ert.sessions) as session:
        submit_release(session, release_id, actor=author, renderer=renderer, settings=ert.settings, now=ert.clock())
    with transaction(ert.sessions) as session:
        result = approve_release(
            session, release_id, approver=approver, renderer=renderer, settings=ert.settings, now=ert.clock()
        )
    assert result.refused is None, result.refused
    with transaction(ert.sessions) as session:
        if release_store.get_release(session, release_id).send_at is None:
            # approved without a send time waits to be scheduled (issue 21): send it now
            workflow.schedule(session, release_id, at=None, send_now=True, actor=author, now=ert.clock())


def messages_to(fake: FakeTransport, start: int = 0) -> dict[str, EmailMessage]:
    """The messages ``fake`` accepted from index ``start`` on, by recipient."""
    return {s.recipient: email.message_from_bytes(s.data, policy=email.policy.default) for s in fake.sent[start:]}


PEOPLE = """\
email,first_name,timezone
tokyo@example.com,Aki,Asia/Tokyo
paris@example.com,Pol,Europe/Paris
ny@example.com,Nia,America/New_York
mars@example.com,Max,
none@example.com,Noa,
"""
#: 09:00 on 2 December in each zone, in UTC (the release's zone, London, is UTC in winter)
WAVES = {
    datetime(2026, 12, 2, 0, 0, tzinfo=UTC): ["tokyo@example.com"],
    datetime(2026, 12, 2, 8, 0, tzinfo=UTC): ["paris@example.com"],
    datetime(2026, 12, 2, 9, 0, tzinfo=UTC): ["mars@example.com", "none@example.com"],
    datetime(2026, 12, 2, 14, 0, tzinfo=UTC): ["ny@example.com"],
}


def local_release(rt: Runtime, tmp_path: Path) -> int:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE, "utf-8")
    contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW)
    with transaction(rt.sessions) as session:
        # the import refuses a zone that is not IANA; one stored earlier (or dropped from
        # the zone data since) is read as the release's zone
        session.execute(update(Contact).where(Contact.email == "mars@example.com").values(timezone="Mars/Olympus_Mons"))
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as session:
        session.execute(
            update(Release)
            .where(Release.id == rid)
            .values(
                send_at_local="2026-12-02 09:00",
                timezone="Europe/London",
                send_at=datetime(2026, 12, 1, 19, 0, tzinfo=UTC),
            )
        )
    return rid
