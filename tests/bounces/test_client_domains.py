"""The bounce receiver answers for every client's return-path domain (and the instance's);
VERP tokens work at all of them; a returned proof is recorded on the proof and
suppresses no one."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from mailer.bounces.domains import ClientBounceDomains
from mailer.bounces.policy import BounceOutcome
from mailer.bounces.receive import BounceServer
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store import proofs as proof_store
from mailer.store.db import transaction
from tests.support.bounces import delivery, dsn, events, processor, send_to, suppressions


@pytest.fixture
def lmtp(rt: Runtime) -> Iterator[BounceServer]:
    with BounceServer(processor(rt), port=0) as server:
        yield server


def _deliver(port: int, to: str, raw: bytes) -> dict[str, tuple[int, bytes]]:
    with smtplib.LMTP("127.0.0.1", port) as client:
        return client.sendmail("", [to], raw)


def test_each_clients_return_path_domain_is_accepted(rt: Runtime, lmtp: BounceServer) -> None:
    """Notices to bounces+TOKEN@ two clients' return-path domains, and to the instance's, are all recorded."""
    tokens = Tokens.from_settings(rt.settings)
    north = send_to(rt, "gone-n@example.org", client="north")
    south = send_to(rt, "gone-s@example.org", client="south")
    legacy = send_to(rt, "gone-l@example.org", client="north")
    for sent, domain in (
        (north, "bounces.north.example.org"),
        (south, "bounces.south.example.org"),
        (legacy, rt.settings.sender.bounce_domain),
    ):
        to = tokens.verp_address(sent.delivery_id, domain)
        assert _deliver(lmtp.port, to, dsn(sent.email, to=to)) == {}
        assert delivery(rt, sent.delivery_id).status == "bounced"
    assert {("gone-n@example.org", "*"), ("gone-s@example.org", "*"), ("gone-l@example.org", "*")} <= set(
        suppressions(rt)
    )


def test_a_token_works_at_any_of_our_domains_and_staff_addresses_everywhere(rt: Runtime, lmtp: BounceServer) -> None:
    """A delivery's token is genuine at another client's domain too; postmaster@ every bounce domain reaches staff."""
    tokens = Tokens.from_settings(rt.settings)
    north = send_to(rt, "moved@example.org", client="north")
    send_to(rt, "someone@example.org", client="south")
    to = tokens.verp_address(north.delivery_id, "bounces.south.example.org")
    assert _deliver(lmtp.port, to, dsn(north.email, to=to)) == {}
    assert delivery(rt, north.delivery_id).status == "bounced"
    for staff in ("postmaster@bounces.north.example.org", "abuse@bounces.south.example.org"):
        assert processor(rt).accepts_recipient(staff)
    for foreign in (
        "postmaster@bounces.elsewhere.example",
        tokens.verp_address(north.delivery_id, "north.example.org"),
    ):
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            _deliver(lmtp.port, foreign, dsn(north.email, to=foreign))


def test_a_client_created_while_the_receiver_runs_is_answered_for(rt: Runtime) -> None:
    """The domain set is cached, but an address at an unknown domain reads the clients again."""
    clock = [0.0]
    domains = ClientBounceDomains(rt.sessions, rt.settings, ttl=600, miss_interval=1, monotonic=lambda: clock[0])
    assert domains.domains() == frozenset()
    sent = send_to(rt, "late@example.org", client="latecomer")
    assert not domains("bounces.latecomer.example.org")  # asked again within the miss interval
    clock[0] = 2.0
    assert domains("bounces.latecomer.example.org")
    assert "bounces.latecomer.example.org" in domains.domains()
    assert sent.client_slug == "latecomer"


def test_returned_proof_is_recorded_on_the_proof_and_suppresses_no_one(rt: Runtime, lmtp: BounceServer) -> None:
    """A hard bounce to a proof's tokenized return path: 250, recorded on the proof, no event, no suppression."""
    sent = send_to(rt, "someone@example.org", client="north")
    with transaction(rt.sessions) as session:
        release_id = delivery(rt, sent.delivery_id).release_id
        proof = proof_store.add_proof(
            session,
            release_id,
            segment_id=None,
            to_address="me@agency.example.com",
            content_hash="0" * 64,
            message_id="<proof.1@north.example.org>",
            result="sent: 250 OK",
            now=rt.clock(),
        )
        proof_id = proof.id
    tokens = Tokens.from_settings(rt.settings)
    to = f"bounces+{tokens.proof_verp(proof_id)}@bounces.north.example.org"
    assert _deliver(lmtp.port, to, dsn("me@agency.example.com", to=to)) == {}
    assert [r.outcome for r in lmtp.handler.results] == [BounceOutcome.PROOF]
    with transaction(rt.sessions) as session:
        stored = proof_store.get_proof(session, proof_id)
        assert stored is not None and stored.bounced_at is not None
        assert stored.bounce is not None and "me@agency.example.com: failed 5.1.1" in stored.bounce
    assert suppressions(rt) == {}
    assert events(rt) == []
    assert delivery(rt, sent.delivery_id).status == "sent"
    forged = f"bounces+{Tokens('another-key-of-at-least-32-bytes-000').proof_verp(proof_id)}@bounces.north.example.org"
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _deliver(lmtp.port, forged, dsn("me@agency.example.com", to=forged))
