"""Segments on history: received:ID, NOT received:ID, bounced, complained, replied:ID and
downloaded:ID in the rule language, evaluated against a real send (both databases)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.domain.errors import SegmentSyntaxError
from mailer.domain.replies import ReplyKind
from mailer.runtime import Runtime
from mailer.store import deliveries as delivery_store
from mailer.store import save_segment, signals
from mailer.store.assets import DOWNLOADED
from mailer.store.db import transaction
from mailer.store.segments import Predicate, compile_rule, parse_rule
from mailer.store.tables import Contact, ContactHold, Delivery, DeliveryEvent, Reply
from tests.support.conversations import BOUNCED, GOT, LATE, LEFT, MAYBE, REFUSED, sent_original
from tests.support.engine import Clock, engine_runtime
from tests.support.fake_transport import FakeTransport


def matches(rt: Runtime, rule: str) -> set[str]:
    with transaction(rt.sessions) as session:
        return {e for e in session.scalars(select(Contact.email).where(compile_rule(rule))) if e is not None}


async def test_history_fields_match_the_ledger(rt: Runtime, tmp_path: Path) -> None:
    """After one send (sent, unknown, refused, bounced later, unsubscribed later, joined later, one
    complaint), each history field selects exactly the contacts the ledger says."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    rid = await sent_original(ert, tmp_path, FakeTransport())
    with transaction(ert.sessions) as session:
        got = session.scalars(select(Delivery).where(Delivery.release_id == rid, Delivery.email == GOT)).one()
        session.add(DeliveryEvent(delivery_id=got.id, contact_id=got.contact_id, kind="complained", at=ert.clock()))
    assert matches(ert, f"received:{rid}") == {GOT, LEFT}
    assert matches(ert, f"NOT received:{rid}") == {MAYBE, REFUSED, BOUNCED, LATE}
    assert matches(ert, "bounced") == {REFUSED, BOUNCED}
    assert matches(ert, f"bounced:{rid}") == {REFUSED, BOUNCED}
    assert matches(ert, f"bounced:{rid + 1}") == set()
    assert matches(ert, "complained") == {GOT}
    assert matches(ert, f"received:{rid} AND NOT complained") == {LEFT}
    assert matches(ert, f"received IN ({rid}, {rid + 7}) OR bounced") == {GOT, LEFT, REFUSED, BOUNCED}
    assert matches(ert, f"replied:{rid}") == set()
    assert matches(ert, f"list:press AND NOT downloaded:{rid}") == {GOT, MAYBE, REFUSED, BOUNCED, LEFT, LATE}


async def test_replied_downloaded_and_held_read_the_replies_kit_and_holds(rt: Runtime, tmp_path: Path) -> None:
    """A person's reply counts for replied:ID (an out-of-office does not), a kit download for
    downloaded:ID, and a hold not yet over for the follow-up's held contacts."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    rid = await sent_original(ert, tmp_path, FakeTransport())
    now = ert.clock()
    with transaction(ert.sessions) as session:
        rows = {d.email: d for d in session.scalars(select(Delivery).where(Delivery.release_id == rid))}
        for n, (email, kind) in enumerate(((LEFT, ReplyKind.HUMAN), (GOT, ReplyKind.OUT_OF_OFFICE))):
            row = rows[email]
            session.add(
                Reply(delivery_id=row.id, release_id=rid, contact_id=row.contact_id, channel="reply",
                      kind=kind.value, action="none", dedupe_key=f"k{n}", received_at=now)
            )  # fmt: skip
        session.add(DeliveryEvent(delivery_id=rows[GOT].id, kind=DOWNLOADED, at=now))
        session.add(ContactHold(contact_id=rows[MAYBE].contact_id, until=now + timedelta(days=3), reason="away",
                                created_at=now))  # fmt: skip
        session.add(ContactHold(contact_id=rows[GOT].contact_id, until=now - timedelta(days=1), reason="was away",
                                created_at=now))  # fmt: skip
    assert matches(ert, f"replied:{rid}") == {LEFT}
    assert matches(ert, f"downloaded:{rid}") == {GOT}
    with transaction(ert.sessions) as session:
        held = set(session.scalars(select(Contact.email).where(Contact.id.in_(signals.held_contact_ids(now)))))
    assert held == {MAYBE}


async def test_a_history_segment_plans_a_release(rt: Runtime, tmp_path: Path) -> None:
    """A segment "list:press AND NOT received:ID" plans rows for exactly those who did not get release ID."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    rid = await sent_original(ert, tmp_path, FakeTransport())
    rule = f"list:press AND NOT received:{rid} AND NOT bounced"
    with transaction(ert.sessions) as session:
        segment = save_segment(session, "missed-it", rule, description=None, now=ert.clock())
        added = delivery_store.plan_segment(
            session,
            release_id=rid,
            segment_id=segment.id,
            rule=rule,
            scopes=("*",),
            message_id_domain="mail.example.com",
            now=ert.clock(),
        )
    # the original already has a row for each of them but LATE: only LATE is added
    assert added == 1


def test_history_grammar_and_errors() -> None:
    """Flags stand alone; release fields need a release id in range; mistakes name the column."""
    assert parse_rule("bounced") == Predicate("bounced", ())
    assert parse_rule("received:12") == Predicate("received", ("12",))
    assert parse_rule("complained IN (1, 2)") == Predicate("complained", ("1", "2"))
    for rule, column in (("received:abc", 10), ("received", 9), ("downloaded:0", 12), ("replied:99999999999", 9)):
        with pytest.raises(SegmentSyntaxError) as caught:
            parse_rule(rule)
        assert caught.value.column == column, rule
