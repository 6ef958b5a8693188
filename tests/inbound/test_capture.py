"""Reply capture end to end: the tokenized Reply-To on sent messages, the receiver
(LMTP and SMTP, committed before 250), the reply recorded against its delivery, and its
forward through the outbox to a real SMTP server — retried, never lost."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.bounces.receive import BounceServer
from mailer.engine.dispatch import Dispatcher
from mailer.inbound import act
from mailer.inbound.forward import ForwardSummary
from mailer.message.tokens import Tokens
from mailer.ops import webhooks
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import webhooks as webhook_store
from mailer.store.db import transaction
from mailer.store.tables import WebhookOutbox
from tests.support.bounces import events, send_to, verp
from tests.support.constants import FIXED_NOW
from tests.support.engine import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from tests.support.fake_transport import FakeTransport
from tests.support.faultsmtp import FaultSMTPServer
from tests.support.replies import (
    DESK,
    REPLY_DOMAIN,
    address_of,
    corpus_reply,
    forwarder,
    forwards,
    holds,
    inbound,
    replies,
    reply_runtime,
)


def _smtp_to(rt: Runtime, port: int) -> Runtime:
    data = rt.settings.model_copy(
        update={"smtp": rt.settings.smtp.model_copy(update={"port": port, "connect_timeout": 2, "command_timeout": 5})}
    )
    rt.settings = data
    return rt


async def forward_once(rt: Runtime) -> ForwardSummary:
    """One pass of the forwarder over a transport of its own, closed after."""
    transport = make_transport(rt.settings.smtp)
    try:
        return await forwarder(rt).forward_due(transport)
    finally:
        await transport.close()


async def test_sent_messages_carry_a_reply_address_of_their_delivery(rt: Runtime, tmp_path: Path) -> None:
    """With [replies] domain set, every message's Reply-To is reply+TOKEN@ that domain, and the token names its delivery."""
    clock = Clock()
    ert = reply_runtime(engine_runtime(rt, 1, clock))
    add_contacts(ert, tmp_path, ["ann@daily.example.com", "bob@tv.example.com"])
    release_id = approved_release(ert, [Variant("press-all", "list:press")])
    fake = FakeTransport()
    await Dispatcher(ert, fake).run_once()
    rows = deliveries(ert, release_id)
    desk = inbound(ert)
    assert len(fake.sent) == 2
    for sent in fake.sent:
        msg = email.message_from_bytes(sent.data, policy=email.policy.default)
        reply_to = str(msg["Reply-To"])
        assert reply_to.startswith("reply+") and reply_to.endswith("@" + REPLY_DOMAIN)
        assert reply_to == address_of(ert, rows[sent.recipient].id)
        assert desk.accepts_recipient(reply_to)


async def test_without_a_reply_domain_the_clients_reply_to_stays(rt: Runtime, tmp_path: Path) -> None:
    """Replies not configured: the message carries the client's own Reply-To, as before."""
    ert = engine_runtime(rt, 1, Clock())
    add_contacts(ert, tmp_path, ["ann@daily.example.com"])
    approved_release(ert, [Variant("press-all", "list:press")])
    fake = FakeTransport()
    await Dispatcher(ert, fake).run_once()
    msg = email.message_from_bytes(fake.sent[0].data, policy=email.policy.default)
    assert str(msg["Reply-To"]) == "media@harbor.example.org"


@pytest.mark.parametrize("lmtp", [True, False], ids=["lmtp", "smtp"])
async def test_human_reply_is_recorded_before_250_and_forwarded(rt: Runtime, smtp: FaultSMTPServer, lmtp: bool) -> None:
    """A human reply to a sent message is committed against its delivery before the 250, then forwarded to the desk with the journalist as Reply-To, subject and body intact, and a link to the contact."""
    rrt = reply_runtime(rt)
    sent = send_to(rrt, "ann.lee@daily.example.com")
    to = address_of(rrt, sent.delivery_id)
    raw = corpus_reply("human-en-gmail.eml", to)
    with BounceServer(inbound(rrt), port=0, lmtp=lmtp) as server:
        client = smtplib.LMTP("127.0.0.1", server.port) if lmtp else smtplib.SMTP("127.0.0.1", server.port)
        with client:
            assert client.sendmail("ann.lee@daily.example.com", [to], raw) == {}
            # The 250 came: the reply and its forward are already committed.
            [reply] = replies(rrt)
            [queued] = forwards(rrt)
    assert (reply.delivery_id, reply.contact_id, reply.kind, reply.channel) == (
        sent.delivery_id,
        sent.contact_id,
        "human",
        "reply",
    )
    assert reply.sender == "ann.lee@daily.example.com" and reply.text is not None
    assert "15 minutes with Dr. Example" in reply.text and "To unsubscribe" not in reply.text
    assert (queued.recipient, queued.sent_at) == (DESK, None)
    assert [e.kind for e in events(rrt, sent.delivery_id)] == ["replied"]

    summary = await forward_once(_smtp_to(rrt, smtp.port))
    assert (summary.sent, summary.failed) == (1, 0)
    [accepted] = smtp.accepted
    assert accepted.recipient == DESK
    fwd = email.message_from_bytes(smtp.raw[0], policy=email.policy.default)
    assert str(fwd["Reply-To"]) == "Ann Lee <ann.lee@daily.example.com>"
    assert str(fwd["Subject"]) == "Re: Harbor Institute report: embargoed until Tuesday"
    assert str(fwd["To"]) == DESK
    texts = [p.get_content() for p in fwd.walk() if p.get_content_type() == "text/plain"]
    assert any("Contact in mailer: " in t and "/contacts/ann.lee@daily.example.com" in t for t in texts)
    assert any("Could I get 15 minutes with Dr. Example on Thursday?" in t for t in texts)
    assert forwards(rrt)[0].sent_at is not None


async def test_forward_is_retried_until_the_target_accepts(rt: Runtime, smtp: FaultSMTPServer) -> None:
    """The desk's server refuses the forward, then accepts it: nothing is lost, one copy arrives."""
    clock = Clock()
    rrt = _smtp_to(reply_runtime(rt), smtp.port)
    rrt.clock = clock
    sent = send_to(rrt, "ann.lee@daily.example.com")
    inbound(rrt).process(corpus_reply("human-en-gmail.eml", address_of(rrt, sent.delivery_id)))
    smtp.fail_rcpt(DESK, "451 4.3.0 Mailbox temporarily unavailable", times=1)
    transport = make_transport(rrt.settings.smtp)
    try:
        first = await forwarder(rrt).forward_due(transport)
        assert (first.sent, first.failed) == (0, 1)
        [waiting] = forwards(rrt)
        assert waiting.sent_at is None and waiting.attempts == 1 and "451" in (waiting.last_error or "")
        assert (await forwarder(rrt).forward_due(transport)).sent == 0  # not due yet
        clock.advance(rrt.settings.replies.forward_retry[0])
        second = await forwarder(rrt).forward_due(transport)
    finally:
        await transport.close()
    assert (second.sent, second.failed) == (1, 0)
    assert smtp.copies_of(DESK) == 1
    assert forwards(rrt)[0].sent_at is not None


async def test_forward_waits_while_the_relay_is_down(rt: Runtime, smtp: FaultSMTPServer) -> None:
    """No server answers at first (connection refused): the forward stays in the outbox and goes once one does."""
    clock = Clock()
    down = FaultSMTPServer()
    down.start()
    dead_port = down.port
    down.stop()
    rrt = _smtp_to(reply_runtime(rt), dead_port)
    rrt.clock = clock
    sent = send_to(rrt, "ann.lee@daily.example.com")
    inbound(rrt).process(corpus_reply("human-en-gmail.eml", address_of(rrt, sent.delivery_id)))
    assert (await forward_once(rrt)).failed == 1
    clock.advance(timedelta(days=1).total_seconds())
    _smtp_to(rrt, smtp.port)
    assert (await forward_once(rrt)).sent == 1
    assert smtp.copies_of(DESK) == 1


def test_the_same_reply_delivered_twice_is_recorded_once(rt: Runtime) -> None:
    """An MTA retrying after a lost 250: one reply, one forward, one event."""
    rrt = reply_runtime(rt)
    sent = send_to(rrt, "ann.lee@daily.example.com")
    to = address_of(rrt, sent.delivery_id)
    processor = inbound(rrt)
    assert processor.process(corpus_reply("human-en-gmail.eml", to), envelope_recipients=[to]).outcome.value == "reply"
    again = processor.process(corpus_reply("human-en-gmail.eml", to), envelope_recipients=[to])
    assert again.outcome.value == "duplicate"
    assert len(replies(rrt)) == 1 and len(forwards(rrt)) == 1 and len(events(rrt, sent.delivery_id)) == 1


def test_forged_reply_addresses_are_refused(rt: Runtime) -> None:
    """RCPT to a reply address with a forged token, or at another domain, gets 550; nothing is written."""
    rrt = reply_runtime(rt)
    sent = send_to(rrt, "ann.lee@daily.example.com")
    forged = f"reply+{Tokens('another-key-0123456789abcdefghijklmnop').verp(sent.delivery_id, purpose='reply')}@{REPLY_DOMAIN}"
    elsewhere = address_of(rrt, sent.delivery_id).replace(REPLY_DOMAIN, "other.example.net")
    as_bounce = f"reply+{Tokens.from_settings(rrt.settings).verp(sent.delivery_id)}@{REPLY_DOMAIN}"
    with BounceServer(inbound(rrt), port=0) as server:
        for to in (forged, elsewhere, as_bounce):
            with smtplib.LMTP("127.0.0.1", server.port) as client, pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("x@example.net", [to], corpus_reply("human-en-gmail.eml", to))
    assert replies(rrt) == []


def test_an_out_of_office_sent_to_the_bounce_address_is_read_as_a_reply(rt: Runtime) -> None:
    """An auto-reply to bounces+TOKEN@ (the envelope sender, RFC 3834) is classified and holds the contact; not forwarded."""
    rrt = reply_runtime(rt)
    sent = send_to(rrt, "ben.okafor@wire.example.com")
    to = verp(rrt, sent.delivery_id)
    with BounceServer(inbound(rrt), port=0) as server, smtplib.LMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("", [to], corpus_reply("ooo-en-bounce-address.eml", to)) == {}
    [reply] = replies(rrt)
    assert (reply.channel, reply.kind, reply.action) == ("bounce", "out_of_office", "held")
    [hold] = holds(rrt)
    assert hold.contact_id == sent.contact_id and hold.until.date().isoformat() == "2026-12-10"
    assert forwards(rrt) == []


async def test_a_hostile_reply_is_still_recorded_and_forwarded(rt: Runtime, smtp: FaultSMTPServer) -> None:
    """A subject whose encoded word hides CR/LF and a From with control characters: recorded, and the forward carries no injected header."""
    rrt = _smtp_to(reply_runtime(rt), smtp.port)
    sent = send_to(rrt, "ann.lee@daily.example.com")
    to = address_of(rrt, sent.delivery_id)
    raw = (
        b"From: =?utf-8?q?Ann=0D=0ABcc=3A_victim=40example=2Ecom?= <ann.lee@daily.example.com>\r\n"
        + f"To: {to}\r\n".encode()
        + b"Subject: =?utf-8?q?Hello=0D=0ABcc=3A_victim=40example=2Ecom?=\r\n"
        b"Message-ID: <hostile@daily.example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain\r\n\r\nInterested, call me.\r\n"
    )
    assert inbound(rrt).process(raw, envelope_recipients=[to]).outcome.value == "reply"
    [reply] = replies(rrt)
    assert reply.kind == "human" and "Interested" in (reply.text or "")
    assert (await forward_once(rrt)).sent == 1
    fwd = email.message_from_bytes(smtp.raw[0], policy=email.policy.default)
    assert fwd["Bcc"] is None and str(fwd["Subject"]) == "Hello Bcc: victim@example.com"
    assert [a.recipient for a in smtp.accepted] == [DESK]


def test_a_reply_the_actions_trip_on_is_still_recorded_and_forwarded(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When acting fails (here: forced), the reply is still committed, marked not acted on, and forwarded."""

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("forced failure")

    monkeypatch.setattr(act, "act", broken)
    rrt = reply_runtime(rt)
    sent = send_to(rrt, "nina.park@tabloid.example.com")
    to = address_of(rrt, sent.delivery_id)
    assert inbound(rrt).process(corpus_reply("remove-en.eml", to), envelope_recipients=[to]).outcome.value == "reply"
    [reply] = replies(rrt)
    assert (reply.kind, reply.action, reply.action_detail) == ("unsubscribe", "none", "not acted on: forced failure")
    assert len(forwards(rrt)) == 1


def test_a_reply_queues_the_reply_received_webhook(rt: Runtime) -> None:
    """A captured reply queues reply.received for a subscribed endpoint, with its delivery, kind and sender."""
    rrt = reply_runtime(rt)
    with transaction(rrt.sessions) as session:
        webhooks.register(
            session,
            "https://hooks.example.com/replies",
            ["reply.received"],
            actor="admin@staff.example.com",
            now=FIXED_NOW,
        )
    sent = send_to(rrt, "ann.lee@daily.example.com")
    to = address_of(rrt, sent.delivery_id)
    assert (
        inbound(rrt).process(corpus_reply("human-en-gmail.eml", to), envelope_recipients=[to]).outcome.value == "reply"
    )
    with transaction(rrt.sessions) as session:
        [row] = webhook_store.outbox(session)
        body = json.loads(session.get(WebhookOutbox, row.id).body)  # type: ignore[union-attr]
    assert row.event == "reply.received"
    assert body["data"]["delivery_id"] == sent.delivery_id and body["data"]["kind"] == "human"
    assert "@" in body["data"]["from"]
