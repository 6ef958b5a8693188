"""``[replies] per_client``: each message's Reply-To is ``reply+TOKEN@`` its client's own
return-path domain, the receiver takes replies at every client's such domain (and at the
configured one) and refuses the rest; with it off nothing changes."""

from __future__ import annotations

import email
import email.policy
import smtplib
from pathlib import Path

import pytest

from mailer.bounces.receive import BounceServer
from mailer.engine.dispatch import Dispatcher
from mailer.message.tokens import Tokens
from mailer.releases.clients import client_fields, create_client
from mailer.releases.identity import SendingIdentity, identity_for
from mailer.releases.replyto import forward_sender, replies_captured, reply_domain
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from tests.support.bounces import events, send_to
from tests.support.engine import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from tests.support.fake_transport import FakeTransport
from tests.support.replies import REPLY_DOMAIN, address_of, corpus_reply, forwards, inbound, replies, reply_runtime

CLIENTS = {"north": "north.example.org", "south": "south.example.net"}


def _per_client(rt: Runtime, *, domain: str | None = None) -> Runtime:
    """``rt`` with replies captured per client (and at ``domain`` when given)."""
    return reply_runtime(rt, replies__domain=domain, replies__per_client=True)


def _clients(rt: Runtime) -> dict[str, SendingIdentity]:
    """Create the two clients (each with its From domain) and return their identities."""
    with transaction(rt.sessions) as session:
        for slug, domain in CLIENTS.items():
            fields = client_fields(
                {
                    "slug": slug,
                    "name": f"{slug.title()} Council",
                    "from_name": f"{slug.title()} Press",
                    "from_address": f"press@{domain}",
                    "postal_address": "1 Example Street, Springfield",
                }
            )
            create_client(session, fields, now=rt.clock())
    with transaction(rt.sessions) as session:
        return {slug: identity_for(release_store.get_client(session, slug), rt.settings) for slug in CLIENTS}


def _lmtp(server: BounceServer, to: str) -> None:
    with smtplib.LMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("ann.lee@daily.example.com", [to], corpus_reply("human-en-gmail.eml", to)) == {}


def _refused(server: BounceServer, to: str) -> None:
    with smtplib.LMTP("127.0.0.1", server.port) as client, pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("x@example.net", [to], corpus_reply("human-en-gmail.eml", to))


async def test_two_clients_replies_go_to_their_own_bounce_domains(rt: Runtime, tmp_path: Path) -> None:
    """per_client on: each client's messages carry reply+TOKEN@bounces.<its From domain>, and a reply to each over LMTP is recorded against its own delivery."""
    ert = _per_client(engine_runtime(rt, 1, Clock()))
    identities = _clients(ert)
    add_contacts(ert, tmp_path, ["ann@daily.example.com"])
    releases = {slug: approved_release(ert, [Variant("press-all", "list:press")], client_slug=slug) for slug in CLIENTS}
    fake = FakeTransport()
    await Dispatcher(ert, fake).run_once()
    assert len(fake.sent) == 2
    by_domain: dict[str, str] = {}
    for sent in fake.sent:
        msg = email.message_from_bytes(sent.data, policy=email.policy.default)
        by_domain[str(msg["From"]).rpartition("@")[2].rstrip(">")] = str(msg["Reply-To"])
    expected: dict[str, int] = {}
    for slug, from_domain in CLIENTS.items():
        delivery = deliveries(ert, releases[slug])["ann@daily.example.com"]
        reply_to = by_domain[from_domain]
        assert reply_to.startswith("reply+") and reply_to.endswith(f"@bounces.{from_domain}")
        assert reply_to == address_of(ert, delivery.id, identities[slug])
        expected[reply_to] = delivery.id
    with BounceServer(inbound(ert), port=0, lmtp=True) as server:
        for to in expected:
            _lmtp(server, to)
    recorded = replies(ert)
    assert {r.delivery_id for r in recorded} == set(expected.values()) and len(recorded) == 2
    assert {r.channel for r in recorded} == {"reply"}
    for delivery_id in expected.values():
        assert [e.kind for e in events(ert, delivery_id)][-1] == "replied"


def test_per_client_replies_are_taken_by_the_processor_and_forwarded(rt: Runtime) -> None:
    """per_client on, no domain: the processor records a reply at a client's bounce domain and queues its forward from replies@ the instance bounce domain."""
    prt = _per_client(rt)
    sent = send_to(prt, "ann.lee@daily.example.com", client="harbor")
    to = address_of(prt, sent.delivery_id).replace(prt.settings.sender.bounce_domain, "bounces.harbor.example.org")
    result = inbound(prt).process(corpus_reply("human-en-gmail.eml", to), envelope_recipients=[to])
    assert result.outcome.value == "reply" and result.delivery_ids == (sent.delivery_id,)
    [queued] = forwards(prt)
    assert queued.sender == f"replies@{prt.settings.sender.bounce_domain}"


def test_replies_at_a_domain_of_no_client_or_forged_are_refused(rt: Runtime) -> None:
    """per_client on: a genuine token at a domain that is no client's, or a forged token at a client's bounce domain, gets 550; nothing is written."""
    prt = _per_client(rt)
    sent = send_to(prt, "ann.lee@daily.example.com", client="north")
    token = Tokens.from_settings(prt.settings).verp(sent.delivery_id, purpose="reply")
    forged = Tokens("another-key-0123456789abcdefghijklmnop").verp(sent.delivery_id, purpose="reply")
    processor = inbound(prt)
    with BounceServer(processor, port=0) as server:
        for to in (
            f"reply+{token}@bounces.nobody.example.net",
            f"reply+{token}@{REPLY_DOMAIN}",
            f"reply+{forged}@bounces.north.example.org",
        ):
            _refused(server, to)
    assert processor.accepts_recipient(f"reply+{token}@bounces.north.example.org")
    assert replies(prt) == []


def test_with_per_client_and_a_domain_both_are_accepted(rt: Runtime) -> None:
    """per_client on with [replies] domain set: replies at the configured domain (older messages) and at the client's bounce domain are both taken."""
    prt = _per_client(rt, domain=REPLY_DOMAIN)
    first = send_to(prt, "ann.lee@daily.example.com", client="north")
    second = send_to(prt, "ben.okafor@wire.example.com", client="north")
    token = Tokens.from_settings(prt.settings).verp(second.delivery_id, purpose="reply")
    processor = inbound(prt)
    for delivery_id, to in (
        (first.delivery_id, address_of(prt, first.delivery_id)),
        (second.delivery_id, f"reply+{token}@bounces.north.example.org"),
    ):
        result = processor.process(corpus_reply("human-en-gmail.eml", to), envelope_recipients=[to])
        assert result.outcome.value == "reply" and result.delivery_ids == (delivery_id,)
    assert address_of(prt, first.delivery_id).endswith("@" + REPLY_DOMAIN)
    assert forward_sender(prt.settings) == f"replies@{REPLY_DOMAIN}"


async def test_per_client_off_keeps_the_configured_domain(rt: Runtime, tmp_path: Path) -> None:
    """per_client off: a client's messages carry reply+TOKEN@ the configured domain, and a reply at its bounce domain is refused."""
    ert = reply_runtime(engine_runtime(rt, 1, Clock()))
    identities = _clients(ert)
    add_contacts(ert, tmp_path, ["ann@daily.example.com"])
    release_id = approved_release(ert, [Variant("press-all", "list:press")], client_slug="north")
    fake = FakeTransport()
    await Dispatcher(ert, fake).run_once()
    [sent] = fake.sent
    delivery = deliveries(ert, release_id)["ann@daily.example.com"]
    reply_to = str(email.message_from_bytes(sent.data, policy=email.policy.default)["Reply-To"])
    assert reply_to == address_of(ert, delivery.id, identities["north"])
    assert reply_to.endswith("@" + REPLY_DOMAIN)
    at_client = reply_to.replace(REPLY_DOMAIN, identities["north"].bounce_domain)
    with BounceServer(inbound(ert), port=0) as server:
        _refused(server, at_client)
    assert replies(ert) == []


def test_settings_decide_capture_and_the_forward_sender(rt: Runtime) -> None:
    """Capture is on with a domain or per_client; forwards come from forward_from, else replies@ the domain, else replies@ the instance bounce domain."""
    assert not replies_captured(rt.settings) and reply_domain(rt.settings) is None
    assert forward_sender(rt.settings) is None
    prt = _per_client(rt)
    bounce_domain = prt.settings.sender.bounce_domain
    assert replies_captured(prt.settings) and reply_domain(prt.settings) == bounce_domain
    assert forward_sender(prt.settings) == f"replies@{bounce_domain}"
    fixed = reply_runtime(rt, replies__domain=None, replies__per_client=True, replies__forward_from="desk@example.com")
    assert forward_sender(fixed.settings) == "desk@example.com"
    assert forward_sender(reply_runtime(rt).settings) == f"replies@{REPLY_DOMAIN}"
