"""Queries about outgoing webhooks: endpoints, the outbox and its delivery log.

:func:`emit` is how anything that happens becomes a webhook: it writes one outbox row
per subscribed endpoint *in the caller's transaction*, so an event is queued exactly
when what it reports is committed, and a receiver that is down loses nothing (the
rows wait in the database; :mod:`mailer.ops.webhooks` POSTs and retries them).

Event types: ``delivery.sent``, ``delivery.bounced``, ``delivery.complained``,
``contact.unsubscribed``, ``reply.received`` (:func:`reply_received`), and
``release.<status>`` for every status change of a release (``release.approved``,
``release.sending``, ``release.sent`` ...). An endpoint subscribes to types or to
patterns ending in ``*`` (``release.*``; ``*`` alone is everything).
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from mailer.store.tables import WebhookAttempt, WebhookEndpoint, WebhookOutbox

#: The event types an endpoint may subscribe to (patterns: see :func:`matches`).
EVENT_TYPES = (
    "delivery.sent",
    "delivery.bounced",
    "delivery.complained",
    "contact.unsubscribed",
    "reply.received",
    "release.*",
)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def matches(patterns: str, event: str) -> bool:
    """True when ``event`` is one of the space-separated ``patterns`` (``*`` wildcards)."""
    return any(fnmatch.fnmatchcase(event, p) for p in patterns.split())


@dataclass(frozen=True)
class EndpointLine:
    id: int
    url: str
    events: str
    active: bool
    created_by: str
    created_at: datetime
    pending: int = 0
    failed: int = 0


def add_endpoint(session: Session, *, url: str, events: str, secret: str, actor: str, now: datetime) -> int:
    """Writes: a new active endpoint; returns its id."""
    row = WebhookEndpoint(url=url, events=events, secret=secret, active=True, created_by=actor, created_at=now)
    session.add(row)
    session.flush()
    return row.id


def set_endpoint_active(session: Session, endpoint_id: int, active: bool) -> bool:
    """Writes: enable or disable an endpoint (a disabled one gets no new events; what is
    queued for it waits). Returns False when there is no such endpoint."""
    result = session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(active=active))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def endpoints(session: Session) -> list[EndpointLine]:
    """Every endpoint with its pending and failed outbox counts, oldest first."""
    counts: dict[tuple[int, str], int] = {
        (endpoint_id, status): int(n)
        for endpoint_id, status, n in session.execute(
            select(WebhookOutbox.endpoint_id, WebhookOutbox.status, func.count())
            .where(WebhookOutbox.status.in_([PENDING, FAILED]))
            .group_by(WebhookOutbox.endpoint_id, WebhookOutbox.status)
        )
    }
    return [
        EndpointLine(
            e.id,
            e.url,
            e.events,
            e.active,
            e.created_by,
            e.created_at,
            pending=counts.get((e.id, PENDING), 0),
            failed=counts.get((e.id, FAILED), 0),
        )
        for e in session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    ]


def emit(session: Session, event: str, data: Mapping[str, Any], *, now: datetime) -> int:
    """Writes: queue ``event`` with ``data`` for every active endpoint subscribed to it,
    in the caller's transaction; returns how many rows were queued (0: nobody listens)."""
    return emit_many(session, event, [data], now=now)


def emit_many(session: Session, event: str, items: Sequence[Mapping[str, Any]], *, now: datetime) -> int:
    """Writes: :func:`emit` for several events of one type (one endpoint query)."""
    if not items:
        return 0
    targets = [
        endpoint_id
        for endpoint_id, patterns in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.active.is_(True))
        )
        if matches(patterns, event)
    ]
    if not targets:
        return 0
    rows = []
    for data in items:
        event_id = uuid.uuid4().hex
        body = json.dumps(
            {"id": event_id, "type": event, "created_at": now.isoformat(), "data": dict(data)},
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
        rows += [
            {
                "endpoint_id": endpoint_id,
                "event": event,
                "event_id": event_id,
                "body": body,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint_id in targets
        ]
    session.execute(insert(WebhookOutbox), rows)
    return len(rows)


def reply_received(
    session: Session,
    *,
    delivery_id: int | None,
    release_id: int | None,
    from_address: str,
    subject: str | None,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Writes: queue ``reply.received`` (for the replies inbox: call it in the transaction
    that files the reply). Returns the rows queued."""
    data = {"delivery_id": delivery_id, "release_id": release_id, "from": from_address, "subject": subject}
    return emit(session, "reply.received", {**data, **(extra or {})}, now=now)


@dataclass(frozen=True)
class Due:
    """An outbox row to POST now."""

    id: int
    endpoint_id: int
    url: str
    secret: str
    event: str
    event_id: str
    body: str
    attempts: int
    created_at: datetime


def claim_due(session: Session, *, now: datetime, until: datetime, limit: int) -> list[Due]:
    """Writes: take up to ``limit`` pending rows whose time has come, oldest first, and
    push their ``next_attempt_at`` to ``until`` (a lease: another process does not POST
    them meanwhile; a crash leaves them to be retried then). Skips rows another
    transaction holds (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    query = (
        select(WebhookOutbox.id)
        .where(WebhookOutbox.status == PENDING, WebhookOutbox.next_attempt_at <= now)
        .order_by(WebhookOutbox.next_attempt_at, WebhookOutbox.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        return []
    session.execute(update(WebhookOutbox).where(WebhookOutbox.id.in_(ids)).values(next_attempt_at=until))
    rows = session.execute(
        select(
            WebhookOutbox.id,
            WebhookOutbox.endpoint_id,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookOutbox.event,
            WebhookOutbox.event_id,
            WebhookOutbox.body,
            WebhookOutbox.attempts,
            WebhookOutbox.created_at,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookOutbox.endpoint_id)
        .where(WebhookOutbox.id.in_(ids))
        .order_by(WebhookOutbox.id)
    )
    found: list[Any] = list(rows)
    return [Due(*r) for r in found]


def record_attempt(
    session: Session,
    outbox_id: int,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    outcome: str,
    next_attempt_at: datetime,
    now: datetime,
) -> None:
    """Writes: one attempt in the delivery log, and the row's new state (``outcome``:
    delivered, pending again at ``next_attempt_at``, or failed)."""
    session.add(
        WebhookAttempt(outbox_id=outbox_id, at=now, status_code=status_code, error=error, duration_ms=duration_ms)
    )
    session.execute(
        update(WebhookOutbox)
        .where(WebhookOutbox.id == outbox_id)
        .values(
            attempts=WebhookOutbox.attempts + 1,
            status=outcome,
            next_attempt_at=next_attempt_at,
            last_code=status_code,
            last_error=error,
            delivered_at=now if outcome == DELIVERED else None,
        )
    )


@dataclass(frozen=True)
class OutboxLine:
    id: int
    endpoint_id: int
    url: str
    event: str
    event_id: str
    status: str
    attempts: int
    last_code: int | None
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None


def outbox(
    session: Session, *, endpoint_id: int | None = None, status: str | None = None, limit: int = 100
) -> list[OutboxLine]:
    """The delivery log: outbox rows, newest first."""
    query = select(
        WebhookOutbox.id,
        WebhookOutbox.endpoint_id,
        WebhookEndpoint.url,
        WebhookOutbox.event,
        WebhookOutbox.event_id,
        WebhookOutbox.status,
        WebhookOutbox.attempts,
        WebhookOutbox.last_code,
        WebhookOutbox.last_error,
        WebhookOutbox.next_attempt_at,
        WebhookOutbox.created_at,
        WebhookOutbox.delivered_at,
    ).join(WebhookEndpoint, WebhookEndpoint.id == WebhookOutbox.endpoint_id)
    if endpoint_id is not None:
        query = query.where(WebhookOutbox.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookOutbox.status == status)
    found: list[Any] = list(session.execute(query.order_by(WebhookOutbox.id.desc()).limit(limit)))
    return [OutboxLine(*r) for r in found]


def attempts(session: Session, outbox_id: int) -> list[WebhookAttempt]:
    """The POSTs of one outbox row, oldest first."""
    query = select(WebhookAttempt).where(WebhookAttempt.outbox_id == outbox_id).order_by(WebhookAttempt.id)
    return list(session.scalars(query))


def retry_failed(session: Session, endpoint_id: int, *, now: datetime) -> int:
    """Writes: put the given-up rows of an endpoint back in the queue (after the receiver
    is fixed); returns how many."""
    result = session.execute(
        update(WebhookOutbox)
        .where(WebhookOutbox.endpoint_id == endpoint_id, WebhookOutbox.status == FAILED)
        .values(status=PENDING, next_attempt_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
