"""GET /healthz, /readyz and /metrics: no sign-in (metrics: an optional bearer token), no secrets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from mailer.config import OpsSettings
from mailer.runtime import Runtime
from mailer.store import counters
from mailer.store import heartbeats as heartbeat_store
from mailer.store.db import transaction
from mailer.web import create_app
from tests.support.constants import FIXED_NOW
from tests.support.web import seed_release


def test_healthz_answers_without_sign_in(app: FastAPI) -> None:
    """The liveness probe needs no session and says only that the process answers."""
    response = TestClient(app).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_turns_not_ready_when_the_sender_heartbeat_is_stale(app: FastAPI, rt: Runtime) -> None:
    """Ready with fresh heartbeats; 503 naming the sender once its heartbeat is stale; no URL in the body."""
    client = TestClient(app)
    with transaction(rt.sessions) as session:
        heartbeat_store.beat(session, name="sender:h:1", kind="sender", host="h", pid=1, now=FIXED_NOW)
        heartbeat_store.beat(session, name="inbound:h:2", kind="inbound", host="h", pid=2, now=FIXED_NOW)
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    with transaction(rt.sessions) as session:
        heartbeat_store.forget(session, "sender:h:1")
        heartbeat_store.beat(
            session, name="sender:h:1", kind="sender", host="h", pid=1, now=FIXED_NOW - timedelta(minutes=10)
        )
    stale = client.get("/readyz")
    assert stale.status_code == 503
    body = stale.json()
    assert body["checks"]["sender_heartbeat"]["ok"] is False
    assert body["checks"]["inbound_heartbeat"]["ok"] is True
    assert rt.settings.database.url not in stale.text and "postgres" not in stale.text


def test_metrics_serve_ledger_counts_pushed_counters_and_latency(app: FastAPI, rt: Runtime, tmp_path: Path) -> None:
    """/metrics has deliveries by status, per-release bounces, pushed counters and request latency."""
    seeded = seed_release(rt, tmp_path)
    with transaction(rt.sessions) as session:
        counters.add_counts(session, {("inbound_messages", "kind=bounce"): 3.0}, now=FIXED_NOW)
    client = TestClient(app)
    client.get("/healthz")
    text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("mailer_deliveries", (("status", "sent"),))] == 2
    assert samples[("mailer_deliveries", (("status", "failed"),))] == 1
    assert samples[("mailer_release_events_total", (("kind", "bounced"), ("release", str(seeded.release_id))))] == 1
    assert samples[("mailer_inbound_messages_total", (("kind", "bounce"),))] == 3
    assert samples[("mailer_queue_due", ())] == 0
    assert samples[("mailer_breaker_trips_total", ())] == 0
    assert (
        "mailer_web_request_duration_seconds_count",
        (("method", "GET"), ("route", "/healthz"), ("status", "2xx")),
    ) in samples


def test_metrics_bearer_token(rt: Runtime) -> None:
    """With ops.metrics_token set, /metrics answers 401 without it and 200 with it."""
    settings = rt.settings.model_copy(update={"ops": OpsSettings(metrics_token=SecretStr("scrape-me-please"))})
    client = TestClient(create_app(settings, clock=rt.clock))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
    assert ok.status_code == 200 and "mailer_deliveries" in ok.text
