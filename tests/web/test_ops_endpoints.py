"""GET /healthz and /readyz: no sign-in, no secrets, 503 while not ready."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from mailer.runtime import Runtime
from mailer.store import heartbeats as heartbeat_store
from mailer.store.db import transaction
from tests.support.constants import FIXED_NOW


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
