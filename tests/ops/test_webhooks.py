"""Outgoing webhooks: events queued in the transaction of what they report, signed
POSTs to a real HTTP receiver that fails and then recovers (nothing lost), backoff,
giving up, and the producers (engine, bounces, unsubscribes, release workflow)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mailer.audience.unsubscribes import UnsubscribeChoice, unsubscribe
from mailer.domain.errors import InputError
from mailer.engine.dispatch import Dispatcher
from mailer.ops import webhooks
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.store import webhooks as webhook_store
from mailer.store.audit import audit_page
from mailer.store.db import transaction
from mailer.store.tables import WebhookOutbox
from tests.support.bounces import dsn, processor, send_to, verp
from tests.support.constants import FIXED_NOW
from tests.support.engine import Clock, Variant, add_contacts, approved_release
from tests.support.fake_transport import FakeTransport
from tests.support.web import seed_delivery


@dataclass
class Receiver:
    """A real HTTP server: answers 503 to the first ``failures`` POSTs, then 200."""

    failures: int = 0
    seen: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                code = 503 if state.failures > 0 else 200
                state.failures -= 1
                state.seen.append(({k.lower(): v for k, v in self.headers.items()}, body, code))
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"no" if code != 200 else b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def register(rt: Runtime, url: str, *events: str) -> webhooks.Registered:
    with transaction(rt.sessions) as session:
        return webhooks.register(session, url, list(events), actor="admin@staff.example.com", now=FIXED_NOW)


def test_signature_round_trip_and_tampering() -> None:
    """A signature verifies over the same timestamp and body; another body, key or an old time does not."""
    body = b'{"type":"delivery.sent"}'
    header = webhooks.signature_header("whsec_k", 1_764_579_600, body)
    assert header.startswith("t=1764579600,v1=") and len(header.split("v1=")[1]) == 64
    assert webhooks.verify("whsec_k", header, body, now=1_764_579_650)
    assert not webhooks.verify("whsec_k", header, body + b" ", now=1_764_579_650)
    assert not webhooks.verify("other", header, body, now=1_764_579_650)
    assert not webhooks.verify("whsec_k", header, body, now=1_764_579_600 + 3600)


def test_a_receiver_that_fails_then_recovers_loses_nothing(rt: Runtime, receiver: Receiver) -> None:
    """Three events; the receiver answers 503 three times; after the backoff each arrives once, signed, in the log."""
    hook = register(rt, receiver.url, "delivery.sent", "release.*")
    with transaction(rt.sessions) as session:
        for n in (1, 2):
            webhook_store.emit(session, "delivery.sent", {"delivery_id": n}, now=FIXED_NOW)
        webhook_store.emit(session, "release.sent", {"release_id": 9}, now=FIXED_NOW)
        assert webhook_store.emit(session, "contact.unsubscribed", {"delivery_id": 1}, now=FIXED_NOW) == 0
    receiver.failures = 3
    clock = Clock()
    live = replace(rt, clock=clock)

    assert webhooks.deliver_due(live) == 3
    assert [code for _, _, code in receiver.seen] == [503, 503, 503]
    assert webhooks.deliver_due(live) == 0  # backing off: nothing is due yet
    clock.advance(rt.settings.webhooks.retry_schedule[0])
    assert webhooks.deliver_due(live) == 3

    delivered = [(h, b) for h, b, code in receiver.seen if code == 200]
    assert len(delivered) == 3
    ids = {h["mailer-event-id"] for h, _ in delivered}
    assert len(ids) == 3 and ids == {h["mailer-event-id"] for h, _, code in receiver.seen if code == 503}
    for headers, body in delivered:
        assert webhooks.verify(hook.secret, headers["mailer-signature"], body, now=clock.now.timestamp())
        event = json.loads(body)
        assert event["type"] == headers["mailer-event"] and event["id"] == headers["mailer-event-id"]
    with transaction(rt.sessions) as session:
        rows = webhook_store.outbox(session)
        assert {(r.status, r.attempts, r.last_code) for r in rows} == {("delivered", 2, 200)}
        log = webhook_store.attempts(session, rows[0].id)
        assert [a.status_code for a in log] == [503, 200]
        assert log[0].error is not None and "503" in log[0].error


def test_an_unreachable_receiver_is_retried_then_given_up_and_requeued(rt: Runtime) -> None:
    """Nobody listening: backoff grows; past give_up_after_hours the row fails; retry_failed queues it again."""
    register(rt, "http://127.0.0.1:9/closed", "*")
    with transaction(rt.sessions) as session:
        webhook_store.emit(session, "reply.received", {"from": "ann@example.com"}, now=FIXED_NOW)
    clock = Clock()
    live = replace(rt, clock=clock)
    settings = rt.settings.webhooks
    assert webhooks.deliver_due(live) == 1
    with transaction(rt.sessions) as session:
        [row] = webhook_store.outbox(session)
    assert row.status == "pending" and row.last_code is None and row.last_error
    assert row.next_attempt_at == FIXED_NOW + timedelta(seconds=settings.retry_schedule[0])
    assert webhooks.next_delay(settings, 2) == timedelta(seconds=settings.retry_schedule[1])
    assert webhooks.next_delay(settings, 99) == timedelta(seconds=settings.retry_schedule[-1])
    clock.advance(settings.give_up_after_hours * 3600)
    assert webhooks.deliver_due(live) == 1
    with transaction(rt.sessions) as session:
        [row] = webhook_store.outbox(session)
        assert row.status == "failed" and row.attempts == 2
        assert webhook_store.retry_failed(session, row.endpoint_id, now=clock.now) == 1
        assert webhook_store.outbox(session, status="pending")


def test_register_checks_url_and_events_and_is_audited(rt: Runtime) -> None:
    """A bad URL or event type is refused; registering and disabling are in the audit log."""
    with transaction(rt.sessions) as session, pytest.raises(InputError):
        webhooks.register(session, "ftp://example.com/x", ["delivery.sent"], actor="a", now=FIXED_NOW)
    with transaction(rt.sessions) as session, pytest.raises(InputError):
        webhooks.register(session, "https://example.com/x", ["delivery.opened"], actor="a", now=FIXED_NOW)
    hook = register(rt, "https://hooks.example.com/mailer", "delivery.sent,delivery.bounced")
    assert hook.secret.startswith("whsec_")
    with transaction(rt.sessions) as session:
        webhooks.set_active(session, hook.id, False, actor="admin@staff.example.com", now=FIXED_NOW)
        assert webhook_store.emit(session, "delivery.sent", {}, now=FIXED_NOW) == 0
        [line] = webhook_store.endpoints(session)
        assert line.events == "delivery.sent delivery.bounced" and not line.active
        actions = [e.action for e in audit_page(session).rows]
    assert actions == ["settings.webhook.disable", "settings.webhook.add"]


async def test_producers_queue_sent_release_and_unsubscribe_events(rt: Runtime, tmp_path: Path) -> None:
    """A real send queues delivery.sent per recipient and release.sending/sent; an unsubscribe queues contact.unsubscribed."""
    register(rt, "https://hooks.example.com/all", "*")
    add_contacts(rt, tmp_path, ["ann@example.com", "bob@example.net"])
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    pool = FakeTransport()
    await Dispatcher(rt, pool).run_once()
    seeded = seed_delivery(rt)
    with transaction(rt.sessions) as session:
        unsubscribe(session, seeded.delivery_id, UnsubscribeChoice.CLIENT, source="one-click", now=FIXED_NOW)
        workflow.pause(session, seeded.release_id, actor="pat", now=FIXED_NOW)
        kinds = sorted(r.event for r in webhook_store.outbox(session))
    assert kinds.count("delivery.sent") == 2
    assert "release.sending" in kinds and "release.sent" in kinds
    assert "contact.unsubscribed" in kinds and "release.paused" in kinds
    assert rid


def test_a_hard_bounce_queues_delivery_bounced(rt: Runtime) -> None:
    """A DSN for a sent delivery queues delivery.bounced with the delivery, the address and the status."""
    register(rt, "https://hooks.example.com/bounces", "delivery.bounced", "delivery.complained")
    sent = send_to(rt, "gone@example.org")
    processor(rt).process(dsn("gone@example.org", to=verp(rt, sent.delivery_id)))
    with transaction(rt.sessions) as session:
        [row] = webhook_store.outbox(session)
        body = json.loads(session.get(WebhookOutbox, row.id).body)  # type: ignore[union-attr]
    assert row.event == "delivery.bounced"
    assert body["data"]["delivery_id"] == sent.delivery_id and body["data"]["email"] == "gone@example.org"
    assert body["data"]["code"] == 550
