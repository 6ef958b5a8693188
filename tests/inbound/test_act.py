"""What replies do: out of office holds the contact (the next release records ``held``,
planned or claimed), left the outlet suppresses the old address and queues the new one,
not my beat proposes a topic suppression, remove me suppresses for the client; staff
confirm the research queue and undo any of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.domain.errors import InputError, WorkflowError
from mailer.engine.dispatch import Dispatcher
from mailer.inbound import act, research
from mailer.runtime import Runtime
from mailer.store import contact_holds, queue
from mailer.store.db import transaction
from mailer.store.tables import Contact, ContactBeat, DeliveryEvent, ListMember, Suppression
from tests.support.bounces import send_to, suppressions
from tests.support.constants import FIXED_NOW
from tests.support.engine import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
    plan_only,
    release_status,
)
from tests.support.fake_transport import FakeTransport
from tests.support.replies import address_of, corpus_reply, holds, inbound, replies, reply_runtime
from tests.support.replies import research as research_items

EVERYONE = [Variant("press-all", "list:press")]
AWAY = {
    "ben@wire.example.com": "ooo-en-exchange.eml",
    "jonas@zeitung.example.de": "ooo-de-outlook.eml",
    "claire@quotidien.example.fr": "ooo-fr.eml",
    "lucia@diario.example.es": "ooo-es.eml",
}


def _plan(rt: Runtime, release_id: int) -> None:
    """Plan the release's one segment (its rows queued, nothing sent)."""
    plan_only(rt, release_id, scopes=("*",), message_id_domain="m.example.com")


def _reply(rt: Runtime, delivery_id: int, name: str) -> None:
    to = address_of(rt, delivery_id)
    assert inbound(rt).process(corpus_reply(name, to), envelope_recipients=[to]).outcome.value == "reply"


async def test_out_of_office_in_four_languages_holds_the_contact_for_the_next_release(
    rt: Runtime, tmp_path: Path
) -> None:
    """EN/DE/FR/ES auto-replies give 3 December; the next release records those four `held` with the reason and sends the rest; after the date they get mail again."""
    clock = Clock()
    ert = reply_runtime(engine_runtime(rt, 1, clock))
    add_contacts(ert, tmp_path, [*AWAY, "here@daily.example.com"])
    first = approved_release(ert, EVERYONE)
    fake = FakeTransport()
    await Dispatcher(ert, fake).run_once()
    rows = deliveries(ert, first)
    for address, name in AWAY.items():
        _reply(ert, rows[address].id, name)
    assert {h.until for h in holds(ert)} == {datetime(2026, 12, 3, tzinfo=UTC)}
    assert {r.action_detail for r in replies(ert)} == {"held until 2026-12-03 (return date from the reply)"}

    second = approved_release(ert, EVERYONE)
    fake = FakeTransport()
    await Dispatcher(ert, fake).run_once()
    rows = deliveries(ert, second)
    assert fake.recipients() == ["here@daily.example.com"]
    assert release_status(ert, second) == "sent"  # held rows are done, not failures
    for address in AWAY:
        assert rows[address].status == "held" and rows[address].reason == "out_of_office"
        assert (rows[address].last_reply or "").startswith("out of office until 2026-12-03")
    with transaction(ert.sessions) as session:
        held_events = session.scalars(select(DeliveryEvent.kind).where(DeliveryEvent.kind == "held")).all()
    assert len(held_events) == 4

    clock.now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    third = approved_release(ert, EVERYONE)
    fake = FakeTransport()
    await Dispatcher(ert, fake).run_once()
    assert {r.status for r in deliveries(ert, third).values()} == {"sent"}


def test_a_hold_recorded_after_planning_is_honoured_at_claim(rt: Runtime, tmp_path: Path) -> None:
    """A row planned before the out-of-office reply arrived is recorded `held` when a worker claims it, not sent."""
    ert = reply_runtime(rt)
    add_contacts(ert, tmp_path, ["ben@wire.example.com", "here@daily.example.com"])
    release_id = approved_release(ert, EVERYONE)
    _plan(ert, release_id)
    with transaction(ert.sessions) as session:
        ben = session.scalar(select(Contact.id).where(Contact.email == "ben@wire.example.com"))
        assert ben is not None
        contact_holds.add_hold(
            session,
            contact_id=ben,
            until=datetime(2026, 12, 3, tzinfo=UTC),
            reason="away",
            reply_id=None,
            now=FIXED_NOW,
        )
    with transaction(ert.sessions) as session:
        claimed = queue.claim_batch(
            session,
            release_id=release_id,
            scopes=["*"],
            owner="w1",
            now=FIXED_NOW,
            lease=timedelta(minutes=5),
            limit=10,
        )
    assert [c.email for c in claimed] == ["here@daily.example.com"]
    assert deliveries(ert, release_id)["ben@wire.example.com"].status == "held"


def test_out_of_office_without_a_date_holds_for_the_default(rt: Runtime) -> None:
    """No return date: held for replies.default_hold_days, and the reply says so."""
    ert = reply_runtime(rt, replies__default_hold_days=10)
    sent = send_to(ert, "sam.patel@radio.example.net")
    _reply(ert, sent.delivery_id, "ooo-en-nodate.eml")
    [hold] = holds(ert)
    assert hold.until == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert replies(ert)[0].action_detail == "held until 2026-12-05 (no return date given)"


def test_left_the_outlet_suppresses_the_old_address_and_queues_the_new(rt: Runtime, tmp_path: Path) -> None:
    """'No longer with the Gazette, now at Nordic Times': old address suppressed (left), research item with both; confirming makes the new contact with the old one's beats and lists."""
    ert = reply_runtime(rt)
    add_contacts(ert, tmp_path, ["mark.ellis@gazette.example.com"], beat="defence")
    release_id = approved_release(ert, EVERYONE)
    _plan(ert, release_id)
    delivery = deliveries(ert, release_id)["mark.ellis@gazette.example.com"]
    _reply(ert, delivery.id, "left-en-newaddress.eml")
    found = suppressions(ert)[("mark.ellis@gazette.example.com", "*")]
    assert found.reason == "left" and found.source.startswith("reply #")
    [item] = research_items(ert)
    assert (item.kind, item.status, item.new_email, item.new_outlet) == (
        "new_address",
        "open",
        "mark.ellis@nordictimes.example.net",
        "Nordic Times",
    )
    with transaction(ert.sessions) as session:
        line = research.confirm(session, item.id, actor="staff@example.com", now=FIXED_NOW)
    assert line == "mark.ellis@nordictimes.example.net added as a contact at Nordic Times"
    with transaction(ert.sessions) as session:
        new = session.scalar(select(Contact).where(Contact.email == "mark.ellis@nordictimes.example.net"))
        assert new is not None and new.outlet == "Nordic Times"
        assert session.scalars(select(ContactBeat.beat).where(ContactBeat.contact_id == new.id)).all() == ["defence"]
        assert len(session.scalars(select(ListMember).where(ListMember.contact_id == new.id)).all()) == 1
    assert research_items(ert)[0].status == "confirmed"
    with transaction(ert.sessions) as session, pytest.raises(WorkflowError):
        research.confirm(session, item.id, actor="staff@example.com", now=FIXED_NOW)


def test_remove_me_suppresses_for_the_client_as_one_click_does(rt: Runtime) -> None:
    """'Please remove me': suppressed for the release's client (unsubscribed), the source naming the reply, the event on the delivery."""
    ert = reply_runtime(rt)
    sent = send_to(ert, "nina.park@tabloid.example.com")
    _reply(ert, sent.delivery_id, "remove-en.eml")
    [reply] = replies(ert)
    found = suppressions(ert)[("nina.park@tabloid.example.com", "harbor")]
    assert found.reason == "unsubscribed" and f"reply #{reply.id}" in found.source
    assert (reply.kind, reply.action) == ("unsubscribe", "unsubscribed")
    with transaction(ert.sessions) as session:
        kinds = session.scalars(select(DeliveryEvent.kind).where(DeliveryEvent.delivery_id == sent.delivery_id)).all()
    assert sorted(kinds) == ["replied", "unsubscribed"]


def test_not_my_beat_proposes_a_topic_suppression_for_staff(rt: Runtime, tmp_path: Path) -> None:
    """'Not my beat': nothing is suppressed until staff confirm; then the address is suppressed for the proposed topic."""
    ert = reply_runtime(rt)
    add_contacts(ert, tmp_path, ["omar.haddad@business.example.com"], beat="retail")
    release_id = approved_release(ert, EVERYONE)
    _plan(ert, release_id)
    _reply(ert, deliveries(ert, release_id)["omar.haddad@business.example.com"].id, "beat-en.eml")
    assert suppressions(ert) == {}
    [item] = research_items(ert)
    assert (item.kind, item.topics) == ("topic", "retail")
    with transaction(ert.sessions) as session:
        research.confirm(session, item.id, actor="staff@example.com", now=FIXED_NOW, topics="maritime-security")
    assert suppressions(ert)[("omar.haddad@business.example.com", "topic:maritime-security")].reason == "manual"


def test_undo_reverses_each_action(rt: Runtime) -> None:
    """Undo lifts a hold, a `left` suppression (dismissing its research item) and a reply's unsubscribe; twice is refused."""
    ert = reply_runtime(rt)
    away = send_to(ert, "ben.okafor@wire.example.com")
    gone = send_to(ert, "mark.ellis@gazette.example.com")
    quit_ = send_to(ert, "nina.park@tabloid.example.com")
    _reply(ert, away.delivery_id, "ooo-en-exchange.eml")
    _reply(ert, gone.delivery_id, "left-en-newaddress.eml")
    _reply(ert, quit_.delivery_id, "remove-en.eml")
    held, left, unsubscribed = replies(ert)
    with transaction(ert.sessions) as session:
        assert act.undo(session, held.id, actor="staff@example.com", now=FIXED_NOW).startswith("hold lifted")
        assert "lifted" in act.undo(session, left.id, actor="staff@example.com", now=FIXED_NOW)
        assert "lifted" in act.undo(session, unsubscribed.id, actor="staff@example.com", now=FIXED_NOW)
    assert all(h.lifted_at is not None for h in holds(ert))
    with transaction(ert.sessions) as session:
        assert session.scalars(select(Suppression)).all() == []
        assert contact_holds.held_contacts(session, FIXED_NOW) == []
    assert research_items(ert)[0].status == "dismissed"
    assert all(r.undone_by == "staff@example.com" for r in replies(ert))
    with transaction(ert.sessions) as session, pytest.raises(WorkflowError):
        act.undo(session, held.id, actor="staff@example.com", now=FIXED_NOW)


def test_a_human_reply_does_nothing_to_undo(rt: Runtime) -> None:
    """A human reply acts on nothing: undo is refused; confirming an item without an address asks for one."""
    ert = reply_runtime(rt)
    sent = send_to(ert, "ann.lee@daily.example.com")
    _reply(ert, sent.delivery_id, "human-en-gmail.eml")
    with transaction(ert.sessions) as session, pytest.raises(WorkflowError):
        act.undo(session, replies(ert)[0].id, actor="staff@example.com", now=FIXED_NOW)
    left = send_to(ert, "helene.roux@hebdo.example.fr")
    _reply(ert, left.delivery_id, "left-fr.eml")
    with transaction(ert.sessions) as session, pytest.raises(InputError):
        research.confirm(session, research_items(ert)[0].id, actor="staff@example.com", now=FIXED_NOW)
