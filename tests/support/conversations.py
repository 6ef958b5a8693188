"""Helpers for the conversation tests (corrections, withdrawals, follow-ups, the cadence
cap, local-hour delivery, history segments): an original release sent through the fake
transport with every kind of outcome, and a linked release taken through submit and
approval."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

from mailer.domain.states import SuppressionReason
from mailer.engine.dispatch import Dispatcher
from mailer.releases.approval import approve_release, submit_release
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store.bounces import mark_delivery_bounced
from mailer.store.db import transaction
from mailer.store.suppressions import add_suppression
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


async def sent_original(ert: Runtime, tmp_path: Path, fake: FakeTransport) -> int:
    """The original release to five journalists, sent through ``fake``: one sent, one
    unknown, one refused, one bounced later, one unsubscribed later; then a contact
    joins the list. Returns the original's id."""
    add_contacts(ert, tmp_path, ORIGINAL_AUDIENCE)
    rid = approved_release(ert, EVERYONE)
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


def messages_to(fake: FakeTransport, start: int = 0) -> dict[str, EmailMessage]:
    """The messages ``fake`` accepted from index ``start`` on, by recipient."""
    return {s.recipient: email.message_from_bytes(s.data, policy=email.policy.default) for s in fake.sent[start:]}
