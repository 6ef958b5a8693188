"""End to end: a release sent by the engine to the fault-injecting server; the rejected and
later-bounced recipients come back through the LMTP receiver as DSNs."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from bouncekit import dsn, processor
from enginekit import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from faultsmtp import FaultSMTPServer, running_fault_server

from mailer.bounces.receive import BounceServer
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.pool import SmtpPool
from mailer.store.db import transaction
from mailer.store.suppressions import is_suppressed


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


async def _send(rt: Runtime) -> None:
    pool = SmtpPool(rt.settings.smtp)
    await Dispatcher(rt, pool).run_once()
    await pool.close()


async def test_bounces_reach_the_ledger_and_suppress_for_the_next_release(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Rejected at RCPT, bounced later (hard), bounced later (soft): the ledger says bounced
    with a reason; hard-bounced contacts are suppressed at the next release, soft ones are not."""
    ert = engine_runtime(rt, smtp.port, Clock())
    people = ["rejected@example.com", "gone-later@example.com", "full-later@example.com", "fine@example.com"]
    add_contacts(ert, tmp_path, people)
    smtp.rcpt_reply["rejected@example.com"] = "550 5.1.1 No such user here"
    first = approved_release(ert, [Variant("press-all", "list:press")])
    await _send(ert)
    rows = deliveries(ert, first)
    assert rows["rejected@example.com"].status == "failed"
    sender_of = {a.recipient: a.sender for a in smtp.accepted}
    assert set(sender_of) == {"gone-later@example.com", "full-later@example.com", "fine@example.com"}

    notices = {
        "rejected@example.com": ("5.1.1", "smtp; 550 5.1.1 <{rcpt}>: No such user here"),
        "gone-later@example.com": ("5.1.1", "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"),
        "full-later@example.com": ("5.2.2", "smtp; 552 5.2.2 <{rcpt}>: Mailbox full"),
    }
    from mailer.message.tokens import Tokens

    tokens = Tokens.from_settings(ert.settings)
    with BounceServer(processor(ert), host="127.0.0.1", port=0, lmtp=True) as receiver:
        for email, (status, diagnostic) in notices.items():
            row = rows[email]
            envelope_to = sender_of.get(email) or tokens.verp_address(row.id, ert.settings.sender.bounce_domain)
            raw = dsn(email, to=envelope_to, status=status, diagnostic=diagnostic, original_message_id=row.message_id)
            with smtplib.LMTP("127.0.0.1", receiver.port) as client:
                refused = client.sendmail("", [envelope_to], raw)
            assert refused == {}

    after = deliveries(ert, first)
    assert (after["gone-later@example.com"].status, after["gone-later@example.com"].reason) == (
        "bounced",
        "user_unknown",
    )
    assert (after["full-later@example.com"].status, after["full-later@example.com"].reason) == (
        "bounced",
        "mailbox_full",
    )
    assert after["rejected@example.com"].status == "bounced"
    assert after["fine@example.com"].status == "sent"
    with transaction(ert.sessions) as session:
        assert is_suppressed(session, "gone-later@example.com")
        assert is_suppressed(session, "rejected@example.com")
        assert not is_suppressed(session, "full-later@example.com")

    smtp.reset()
    second = approved_release(ert, [Variant("press-all", "list:press")], subject="A second release")
    await _send(ert)
    next_rows = deliveries(ert, second)
    assert next_rows["gone-later@example.com"].status == "suppressed"
    assert next_rows["rejected@example.com"].status == "suppressed"
    assert {a.recipient for a in smtp.accepted} == {"full-later@example.com", "fine@example.com"}
