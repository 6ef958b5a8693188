"""Outgoing webhooks: POST each outbox row (:mod:`mailer.store.webhooks`) to its
endpoint, signed, and retry with backoff until a 2xx answer or the give-up time.

Each POST carries the event as JSON (``{"id", "type", "created_at", "data"}``) and::

    Content-Type: application/json
    Mailer-Event: delivery.sent
    Mailer-Event-Id: 3f0c...            (the same for every endpoint and every retry)
    Mailer-Signature: t=1764579600,v1=5d41402abc4b2a76b9719d911017c592...

``v1`` is the hex HMAC-SHA256, keyed with the endpoint's secret, of the ASCII bytes of
``t`` (Unix seconds of this attempt), a ``.``, and the raw body. A receiver recomputes
it, compares in constant time, and refuses a ``t`` older than a few minutes (replays).
Delivery is at least once: a receiver deduplicates on ``Mailer-Event-Id``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from mailer.config import WebhookSettings
from mailer.domain.errors import InputError, NotFoundError
from mailer.runtime import Runtime
from mailer.store import audit
from mailer.store import webhooks as webhook_store
from mailer.store.db import transaction

log = logging.getLogger("mailer.ops.webhooks")

SIGNATURE_HEADER = "Mailer-Signature"
#: how long a claimed row is left to this process before another may POST it again
CLAIM_SECONDS = 300
#: the most of a receiver's error answer kept in the delivery log
MAX_ERROR = 500


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` + ``body`` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Mailer-Signature`` value: ``t=<timestamp>,v1=<hex>``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: float = 300) -> bool:
    """What a receiver does (and what the tests do): True when ``header`` is a valid
    signature of ``body`` made within ``tolerance`` seconds of ``now``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))


@dataclass(frozen=True)
class PostResult:
    """A receiver's answer: the HTTP status, or None and what went wrong."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Poster(Protocol):
    """Sends one POST (a fake in tests)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> PostResult: ...


class UrllibPoster:
    """:class:`Poster` over the standard library (no redirects followed: a 3xx is a failure)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    def __init__(self) -> None:
        self._opener = urllib.request.build_opener(self._NoRedirect)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> PostResult:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return PostResult(int(response.status))
        except urllib.error.HTTPError as exc:
            text = exc.read(MAX_ERROR).decode("utf-8", "replace") if exc.fp is not None else ""
            return PostResult(exc.code, f"HTTP {exc.code} {exc.reason}: {text}".strip()[:MAX_ERROR])
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return PostResult(None, f"{type(exc).__name__}: {reason}"[:MAX_ERROR])


def next_delay(settings: WebhookSettings, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed POST (1-based); the schedule's last repeats."""
    schedule = settings.retry_schedule or [60]
    return timedelta(seconds=schedule[min(attempts, len(schedule)) - 1])


def deliver_due(rt: Runtime, *, poster: Poster | None = None, limit: int | None = None) -> int:
    """POST every due outbox row (up to ``limit``, default ``webhooks.batch_size``) and
    record each answer; returns how many POSTs were made. Blocking: run it in a thread."""
    settings = rt.settings.webhooks
    poster = poster or UrllibPoster()
    now = rt.clock()
    with transaction(rt.sessions) as session:
        due = webhook_store.claim_due(
            session, now=now, until=now + timedelta(seconds=CLAIM_SECONDS), limit=limit or settings.batch_size
        )
    for row in due:
        body = row.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mailer-webhooks/1",
            "Mailer-Event": row.event,
            "Mailer-Event-Id": row.event_id,
            SIGNATURE_HEADER: signature_header(row.secret, int(rt.clock().timestamp()), body),
        }
        started = time.monotonic()
        result = poster.post(row.url, body, headers, timeout=settings.timeout)
        duration_ms = int((time.monotonic() - started) * 1000)
        _record(rt, row, result, duration_ms, settings)
    return len(due)


def _record(
    rt: Runtime, row: webhook_store.Due, result: PostResult, duration_ms: int, settings: WebhookSettings
) -> None:
    now = rt.clock()
    attempts = row.attempts + 1
    error = None if result.ok else (result.error or f"HTTP {result.status}")
    if result.ok:
        outcome, next_at = webhook_store.DELIVERED, now
    elif now - row.created_at >= timedelta(hours=settings.give_up_after_hours):
        outcome, next_at = webhook_store.FAILED, now
        log.warning("webhook %s (%s) to %s given up after %d attempts: %s", row.id, row.event, row.url, attempts, error)
    else:
        outcome, next_at = webhook_store.PENDING, now + next_delay(settings, attempts)
        log.info("webhook %s (%s) to %s failed (%s); retry at %s", row.id, row.event, row.url, error, next_at)
    with transaction(rt.sessions) as session:
        webhook_store.record_attempt(
            session,
            row.id,
            status_code=result.status,
            error=error,
            duration_ms=duration_ms,
            outcome=outcome,
            next_attempt_at=next_at,
            now=now,
        )


@dataclass(frozen=True)
class Registered:
    """A new endpoint: its id and its signing secret (shown once)."""

    id: int
    secret: str


def parse_events(values: list[str]) -> str:
    """The event types or patterns to subscribe to, checked and space-separated.
    Raises InputError naming the choices for anything else."""
    chosen: list[str] = []
    for value in (v.strip() for item in values for v in item.replace(",", " ").split()):
        if value == "*" or value in webhook_store.EVENT_TYPES or value.startswith("release."):
            chosen.append(value)
        else:
            raise InputError(f"--event {value!r}: use one of {', '.join(webhook_store.EVENT_TYPES)}, or *")
    if not chosen:
        raise InputError("--event: give at least one event type")
    return " ".join(dict.fromkeys(chosen))


def register(session: Session, url: str, events: list[str], *, actor: str, now: datetime) -> Registered:
    """Writes: a new endpoint for ``events`` (audited as ``settings.webhook.add``).
    The URL must be http(s) with a host; InputError otherwise."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise InputError(f"{url!r}: give an https:// URL (no user name or password in it)")
    patterns = parse_events(events)
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint_id = webhook_store.add_endpoint(session, url=url, events=patterns, secret=secret, actor=actor, now=now)
    audit.record(session, actor=actor, action="settings.webhook.add", target=url, detail=patterns, now=now)
    return Registered(endpoint_id, secret)


def set_active(session: Session, endpoint_id: int, active: bool, *, actor: str, now: datetime) -> None:
    """Writes: enable or disable an endpoint (audited). NotFoundError for an unknown id."""
    if not webhook_store.set_endpoint_active(session, endpoint_id, active):
        raise NotFoundError(f"no webhook {endpoint_id} (see `mailer webhooks list`)")
    action = "settings.webhook.enable" if active else "settings.webhook.disable"
    audit.record(session, actor=actor, action=action, target=f"webhook {endpoint_id}", now=now)
