"""Proofs are what journalists get: signed with the client's key, from a tokenized return
path at its bounce domain that the receiver accepts; a returned proof suppresses no one.
And the demo signs when a key is configured."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
from pathlib import Path

import dkim
import pytest

from mailer.bounces.policy import BounceOutcome
from mailer.config import DkimSettings, SmtpSettings
from mailer.demo.run import run_demo
from mailer.message import Renderer
from mailer.releases.plan import renderer_for
from mailer.releases.proof import ProofResult, proof_transport, send_proof
from mailer.runtime import Runtime
from mailer.store import proofs as proof_store
from mailer.store.db import transaction
from tests.support.bounces import dsn, events, processor, suppressions
from tests.support.constants import REPO
from tests.support.dkim import SELECTOR, stub_dns_for
from tests.support.faultsmtp import running_fault_server
from tests.support.releases import CLIENT, create, seed


def test_proof_is_signed_like_the_send_and_its_bounce_suppresses_no_one(
    rt: Runtime, tmp_path: Path, dkim_keys: tuple[Path, bytes]
) -> None:
    """A proof of a client with its own key verifies with d=<its domain>; the receiver takes its return path, and a
    hard bounce there is recorded on the proof only."""
    key_file, record = dkim_keys
    seed(rt, tmp_path, client={**CLIENT, "dkim_key_file": str(key_file), "dkim_selector": "acme1"})
    renderer: Renderer = renderer_for(rt.settings)
    rid = create(rt, renderer)
    with running_fault_server() as server:
        settings = rt.settings.model_copy(update={"smtp": SmtpSettings(host=server.host, port=server.port)})

        async def send() -> ProofResult:
            async with proof_transport(settings) as transport:
                return await send_proof(
                    rt.sessions,
                    rid,
                    to_address="me@agency.example.com",
                    segment_slug=None,
                    renderer=renderer,
                    settings=settings,
                    now=rt.clock(),
                    transport=transport,
                )

        result = asyncio.run(send())
        assert server.wait_for_accepted(1, timeout=5)
        accepted, raw = server.accepted[0], server.raw[0]
    assert result.sent
    assert dkim.verify(raw, dnsfunc=stub_dns_for({"acme1._domainkey.acme.example.com": record}))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert "d=acme.example.com;" in str(msg["DKIM-Signature"]).replace(" ", "")
    assert msg["X-Mailer-Proof"] == "yes" and str(msg["Message-ID"]).endswith("@acme.example.com>")
    assert accepted.sender.endswith("@bounces.acme.example.com")

    receiver = processor(rt)
    assert receiver.accepts_recipient(accepted.sender)
    outcome = receiver.process(dsn("me@agency.example.com", to=accepted.sender), envelope_recipients=[accepted.sender])
    assert outcome.outcome is BounceOutcome.PROOF
    again = receiver.process(dsn("me@agency.example.com", to=accepted.sender), envelope_recipients=[accepted.sender])
    assert again.outcome is BounceOutcome.DUPLICATE
    with transaction(rt.sessions) as session:
        (proof,) = proof_store.release_proofs(session, rid)
        assert proof.id == result.proof_id and proof.bounced_at is not None
        assert proof.result.startswith("sent: 250")
    assert suppressions(rt) == {} and events(rt) == []


@pytest.mark.slow  # sends the demo's 238 messages
def test_demo_signs_when_a_key_is_configured(rt: Runtime, tmp_path: Path, dkim_keys: tuple[Path, bytes]) -> None:
    """With [dkim] configured, every message the demo captures verifies, and returns to the demo client's own domain."""
    key_file, record = dkim_keys
    settings = rt.settings.model_copy(
        update={
            "dkim": DkimSettings(key_file=key_file, selector=SELECTOR, domain="harbourlight.example.com"),
            "paths": rt.settings.paths.model_copy(update={"capture_maildir": tmp_path / "capture"}),
        }
    )
    demo_rt = Runtime(settings=settings, engine=rt.engine, sessions=rt.sessions, clock=rt.clock)
    result = run_demo(demo_rt, REPO / "lists", tmp_path / "work")
    assert result.captured == 238
    lookup = stub_dns_for({f"{SELECTOR}._domainkey.harbourlight.example.com": record})
    box = mailbox.Maildir(tmp_path / "capture", create=False)
    messages = [m.as_bytes() for m in box]
    assert len(messages) == 238
    for raw in messages[:20]:
        assert dkim.verify(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), dnsfunc=lookup)
