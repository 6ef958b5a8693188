"""The small store functions other features call: who replied to a release, and who is
held (out of office) at a moment."""

from __future__ import annotations

from datetime import UTC, datetime

from mailer.domain.replies import ReplyKind
from mailer.runtime import Runtime
from mailer.store import contact_holds
from mailer.store.bounces import delivery_by_id
from mailer.store.db import transaction
from mailer.store.replies import contacts_who_replied
from tests.support.bounces import send_to
from tests.support.constants import FIXED_NOW
from tests.support.replies import address_of, corpus_reply, inbound, reply_runtime


def _reply(rt: Runtime, email: str, name: str) -> tuple[int, int]:
    """A delivery to ``email`` (a release of its own) answered with corpus message ``name``; (release, contact)."""
    sent = send_to(rt, email)
    to = address_of(rt, sent.delivery_id)
    inbound(rt).process(corpus_reply(name, to), envelope_recipients=[to])
    with transaction(rt.sessions) as session:
        target = delivery_by_id(session, sent.delivery_id)
        assert target is not None
        return target.release_id, sent.contact_id


def test_contacts_who_replied_counts_people_not_auto_replies(rt: Runtime) -> None:
    """A human reply and a 'remove me' count as replies to the release; an out-of-office does not (unless asked)."""
    rrt = reply_runtime(rt)
    release, ann = _reply(rrt, "ann.lee@daily.example.com", "human-en-gmail.eml")
    other, ben = _reply(rrt, "ben.okafor@wire.example.com", "ooo-en-exchange.eml")
    with transaction(rrt.sessions) as session:
        assert contacts_who_replied(session, release) == {ann}
        assert contacts_who_replied(session, other) == set()
        assert contacts_who_replied(session, other, kinds=[ReplyKind.OUT_OF_OFFICE]) == {ben}
        assert contacts_who_replied(session, 999_999) == set()


def test_held_contacts_at_a_moment(rt: Runtime) -> None:
    """held_contacts(at) lists contacts whose hold lasts past ``at``: the latest end of their holds, none lifted ones."""
    rrt = reply_runtime(rt)
    _, ben = _reply(rrt, "ben.okafor@wire.example.com", "ooo-en-exchange.eml")  # until 3 December
    _, sam = _reply(rrt, "sam.patel@radio.example.net", "ooo-en-nodate.eml")  # default: 14 days
    with transaction(rrt.sessions) as session:
        contact_holds.add_hold(
            session,
            contact_id=ben,
            until=datetime(2026, 12, 20, tzinfo=UTC),
            reason="away longer",
            reply_id=None,
            now=FIXED_NOW,
        )
    with transaction(rrt.sessions) as session:
        now = contact_holds.held_contacts(session, FIXED_NOW)
        later = contact_holds.held_contacts(session, datetime(2026, 12, 15, tzinfo=UTC))
    assert [(h.contact_id, h.until.date().isoformat()) for h in now] == [(ben, "2026-12-20"), (sam, "2026-12-09")]
    assert [h.contact_id for h in later] == [ben] and later[0].reason == "away longer"
