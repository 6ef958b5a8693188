"""Queries about suppressions: addresses that must never be mailed again (in a scope).

Suppressions match on the address hash, so they outlive the erasure of the address;
domain suppressions (``@domain``, ``*.domain``) match on the domain of the address
(:mod:`mailer.store.suppression_match`). Scope ``*`` covers every client; a client slug
covers that client's releases only.
"""

from __future__ import annotations

import hashlib
import typing
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Table, literal, or_, select, update
from sqlalchemy.orm import Session

from mailer.domain.addresses import SuppressionTarget
from mailer.domain.states import GLOBAL_SCOPE, TOPIC_PREFIX, DeliveryStatus, SuppressionReason, email_hash
from mailer.store.address_rows import rows_to
from mailer.store.contacts import insert_ignoring_conflicts
from mailer.store.suppression_match import domain_suppressed_in
from mailer.store.tables import Client, ContactBeat, Delivery, DeliveryEvent, Release, Suppression, SuppressionLog


def add_suppression(
    session: Session,
    email: str,
    *,
    reason: SuppressionReason,
    source: str,
    now: datetime,
    scope: str = GLOBAL_SCOPE,
) -> bool:
    """Writes: suppress the normalized ``email`` in ``scope``. Returns False when it
    already was (the first reason and source are kept); repeating is harmless."""
    return suppress_hash(session, email_hash(email), email=email, reason=reason, source=source, now=now, scope=scope)


def suppression_scopes(session: Session, hashes: Sequence[str]) -> dict[str, set[str]]:
    """For each suppressed hash among ``hashes``, the scopes it is suppressed in."""
    out: dict[str, set[str]] = {}
    if not hashes:
        return out
    rows = session.execute(select(Suppression.email_hash, Suppression.scope).where(Suppression.email_hash.in_(hashes)))
    for h, scope in rows:
        out.setdefault(h, set()).add(scope)
    return out


def is_suppressed(session: Session, email: str, *, client_scope: str | None = None) -> bool:
    """True when ``email`` is suppressed globally, or in ``client_scope`` when given, by
    its address or by a domain suppression."""
    scopes = suppression_scopes(session, [email_hash(email)]).get(email_hash(email), set())
    if GLOBAL_SCOPE in scopes or (client_scope is not None and client_scope in scopes):
        return True
    wanted = [GLOBAL_SCOPE] if client_scope is None else [GLOBAL_SCOPE, client_scope]
    return bool(domain_suppressions_covering(session, email.rpartition("@")[2], wanted))


def domain_suppressions_covering(
    session: Session, domain: str, scopes: Sequence[str] | None = None
) -> list[Suppression]:
    """The domain suppressions (in ``scopes``, or any) that cover addresses at ``domain``."""
    query = select(Suppression).where(
        Suppression.domain.is_not(None),
        or_(
            Suppression.domain == domain,
            Suppression.subdomains.is_(True) & literal(domain).like(literal("%.") + Suppression.domain),
        ),
    )
    if scopes is not None:
        query = query.where(Suppression.scope.in_(list(scopes)))
    return list(session.scalars(query.order_by(Suppression.id)))


def remove_suppression(
    session: Session, email: str, *, scope: str, reason: str, actor: str, now: datetime, action: str = "removed"
) -> bool:
    """Writes: lift a suppression (of an address, or ``@domain`` / ``*.domain``), logging
    who and why under ``action``. Returns False when there was none."""
    found = session.scalar(
        select(Suppression).where(Suppression.email_hash == email_hash(email), Suppression.scope == scope)
    )
    if found is None:
        return False
    session.add(
        SuppressionLog(email_hash=found.email_hash, scope=scope, action=action, reason=reason, actor=actor, at=now)
    )
    session.delete(found)
    return True


def add_domain_suppression(
    session: Session,
    target: SuppressionTarget,
    *,
    reason: SuppressionReason,
    source: str,
    now: datetime,
    scope: str = GLOBAL_SCOPE,
) -> bool:
    """Writes: suppress every address at ``target.domain`` (and under it for ``*.domain``)
    in ``scope``. Stored with ``email`` = the pattern and ``email_hash`` = its hash, so the
    one-per-(hash, scope) rule holds for domains too. Returns False when it already was."""
    stmt = insert_ignoring_conflicts(session, Suppression).values(
        email=target.text,
        email_hash=email_hash(target.text),
        scope=scope,
        reason=reason.value,
        source=source[:500],
        created_at=now,
        domain=target.domain,
        subdomains=target.kind == "subdomains",
    )
    return session.execute(stmt.returning(Suppression.id)).first() is not None


def suppress_hash(
    session: Session,
    hashed: str,
    *,
    email: str | None,
    reason: SuppressionReason,
    source: str,
    now: datetime,
    scope: str = GLOBAL_SCOPE,
) -> bool:
    """Writes: suppress the address with hash ``hashed`` in ``scope`` (``email`` may be None
    when only the hash is known, e.g. after erasure). Returns False when it already was
    suppressed there (the first reason and source are kept); repeating is harmless."""
    added = suppress_many(session, [NewSuppression(hashed, email, scope, source)], reason=reason, now=now)
    return (hashed, scope) in added


@dataclass(frozen=True)
class NewSuppression:
    """One row for :func:`suppress_many`."""

    email_hash: str
    email: str | None
    scope: str
    source: str


def suppress_many(
    session: Session, items: Sequence[NewSuppression], *, reason: SuppressionReason, now: datetime
) -> set[tuple[str, str]]:
    """Writes: :func:`suppress_hash` for each of ``items`` in one statement. Returns the
    ``(email_hash, scope)`` pairs newly suppressed (a pair given twice: the first wins)."""
    first: dict[tuple[str, str], NewSuppression] = {}
    for item in items:
        first.setdefault((item.email_hash, item.scope), item)
    if not first:
        return set()
    rows = [
        {
            "email": item.email,
            "email_hash": item.email_hash,
            "scope": item.scope,
            "reason": reason.value,
            "source": item.source[:500],
            "created_at": now,
        }
        # In one order, so that two groups written at once on PostgreSQL take the
        # unique index's locks in the same order (no deadlock).
        for _, item in sorted(first.items())
    ]
    # RETURNING, not rowcount: on PostgreSQL an INSERT ... ON CONFLICT DO NOTHING may
    # report rowcount 1 even when the conflict skipped the row. One single-row statement
    # executed for every row (SQLAlchemy sends them as one multi-row INSERT), not a
    # multi-row VALUES built here: that has no cache key and was compiled afresh on every
    # one-click (~1 ms of the web process's CPU on PostgreSQL, issue 20).
    table = typing.cast(Table, Suppression.__table__)
    stmt = insert_ignoring_conflicts(session, table).returning(table.c.email_hash, table.c.scope)
    returned = session.execute(stmt, rows)
    return {(str(hashed), str(scope)) for hashed, scope in returned}


def get_suppression(session: Session, hashed: str, scope: str) -> Suppression | None:
    """The suppression of ``hashed`` in exactly ``scope``, if any."""
    return session.scalar(select(Suppression).where(Suppression.email_hash == hashed, Suppression.scope == scope))


def suppression_by_id(session: Session, suppression_id: int) -> Suppression | None:
    """One suppression by id, or None."""
    return session.get(Suppression, suppression_id)


def log_suppression_change(
    session: Session, hashed: str, *, scope: str, action: str, reason: str, actor: str, now: datetime
) -> None:
    """Writes: one SuppressionLog row (who did what to which suppression, and why)."""
    session.add(SuppressionLog(email_hash=hashed, scope=scope, action=action, reason=reason, actor=actor, at=now))
    session.flush()


def set_suppression_reason(session: Session, hashed: str, *, scope: str, reason: SuppressionReason) -> int:
    """Writes: change the reason of an existing suppression; returns rows changed (0 or 1)."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Suppression)
        .where(Suppression.email_hash == hashed, Suppression.scope == scope)
        .values(reason=reason.value)
    )
    return int(result.rowcount)


def find_suppressions(
    session: Session,
    *,
    reason: SuppressionReason | None = None,
    scope: str | None = None,
    hashed: str | None = None,
) -> Iterator[Suppression]:
    """Suppressions matching every filter given, oldest first, streamed in pages of 1000."""
    query = select(Suppression).order_by(Suppression.created_at, Suppression.id)
    if reason is not None:
        query = query.where(Suppression.reason == reason.value)
    if scope is not None:
        query = query.where(Suppression.scope == scope)
    if hashed is not None:
        query = query.where(Suppression.email_hash == hashed)
    yield from session.scalars(query.execution_options(yield_per=1000))


def client_exists(session: Session, slug: str) -> bool:
    """True when a client with this slug exists (a suppression scope must name one)."""
    return session.scalar(select(Client.id).where(Client.slug == slug)) is not None


# --- unsubscribe --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsubscribeRow:
    """What an unsubscribe link needs to know about its delivery."""

    delivery_id: int
    contact_id: int
    email: str | None
    email_hash: str
    client_slug: str
    client_name: str


def unsubscribe_row(session: Session, delivery_id: int) -> UnsubscribeRow | None:
    """The delivery with its recipient and client, or None when it does not exist."""
    return unsubscribe_rows(session, [delivery_id]).get(delivery_id)


def unsubscribe_rows(session: Session, delivery_ids: Collection[int]) -> dict[int, UnsubscribeRow]:
    """:func:`unsubscribe_row` for several deliveries in one query, by delivery id (the
    ones that do not exist are left out)."""
    if not delivery_ids:
        return {}
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.contact_id,
            Delivery.email,
            Delivery.email_hash,
            Client.slug,
            Client.name,
        )
        .join(Release, Release.id == Delivery.release_id)
        .join(Client, Client.id == Release.client_id)
        .where(Delivery.id.in_(sorted(set(delivery_ids))))
    )
    return {row[0]: UnsubscribeRow(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows}


def record_delivery_event(
    session: Session,
    *,
    delivery_id: int,
    contact_id: int | None,
    kind: str,
    detail: str | None,
    dedupe_key: str,
    now: datetime,
) -> bool:
    """Writes: one DeliveryEvent, unless one with ``dedupe_key`` exists. Returns True when
    recorded (so the same happening reported twice is recorded once)."""
    key = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()
    stmt = insert_ignoring_conflicts(session, DeliveryEvent).values(
        delivery_id=delivery_id,
        contact_id=contact_id,
        kind=kind,
        detail=detail,
        dedupe_key=key,
        at=now,
    )
    return session.execute(stmt.returning(DeliveryEvent.id)).first() is not None


@dataclass(frozen=True)
class NewDeliveryEvent:
    """One row for :func:`record_delivery_events`."""

    delivery_id: int
    contact_id: int | None
    kind: str
    detail: str | None
    dedupe_key: str


def record_delivery_events(session: Session, events: Sequence[NewDeliveryEvent], *, now: datetime) -> None:
    """Writes: :func:`record_delivery_event` for each of ``events`` in one statement."""
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        key = hashlib.sha256(e.dedupe_key.encode("utf-8")).hexdigest()
        rows.setdefault(
            key,
            {
                "delivery_id": e.delivery_id,
                "contact_id": e.contact_id,
                "kind": e.kind,
                "detail": e.detail,
                "dedupe_key": key,
                "at": now,
            },
        )
    if rows:
        ordered = [rows[key] for key in sorted(rows)]  # one lock order (see suppress_many)
        # executemany of one cached statement (see suppress_many)
        session.execute(insert_ignoring_conflicts(session, typing.cast(Table, DeliveryEvent.__table__)), ordered)


#: Delivery states that have not been claimed by a worker: a suppression can still stop them.
_PENDING = (DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value)


def suppress_pending_deliveries(session: Session, hashed: str, *, scope: str, reason: str, now: datetime) -> int:
    """Writes: queued and deferred deliveries to ``hashed`` become ``suppressed`` — every
    release for scope ``*``, else the releases of client ``scope``. Rows a worker has
    already claimed (``sending``) are left alone. Returns how many rows changed."""
    if scope.startswith(TOPIC_PREFIX):
        return 0  # topic opt-outs are applied when rows are claimed (the scopes of each release)
    return _suppress_pending(session, update(Delivery).where(rows_to([hashed])), scope=scope, reason=reason, now=now)


def suppress_pending_many(
    session: Session, hashes: Collection[str], *, scope: str, reason: str, now: datetime
) -> Counter[str]:
    """Writes: :func:`suppress_pending_deliveries` for several addresses in one scope, in
    one statement. Returns how many rows changed, by address hash."""
    if scope.startswith(TOPIC_PREFIX) or not hashes:
        return Counter()
    query = (
        update(Delivery)
        .where(rows_to(hashes), Delivery.status.in_(_PENDING))
        .values(status=DeliveryStatus.SUPPRESSED.value, reason=reason[:40], updated_at=now)
        .returning(Delivery.email_hash)
    )
    if scope != GLOBAL_SCOPE:
        query = query.where(Delivery.release_id.in_(_client_releases(scope)))
    return Counter(str(hashed) for hashed in session.scalars(query))


def suppress_pending_at_domain(session: Session, *, scope: str, reason: str, now: datetime) -> int:
    """Writes: queued and deferred deliveries whose domain a domain suppression in
    ``scope`` now covers become ``suppressed`` (as :func:`suppress_pending_deliveries`)."""
    if scope.startswith(TOPIC_PREFIX):
        return 0
    query = update(Delivery).where(Delivery.domain.is_not(None), domain_suppressed_in(Delivery.domain, [scope]))
    return _suppress_pending(session, query, scope=scope, reason=reason, now=now)


def _suppress_pending(session: Session, query: Any, *, scope: str, reason: str, now: datetime) -> int:
    query = query.where(Delivery.status.in_(_PENDING))
    if scope != GLOBAL_SCOPE:
        query = query.where(Delivery.release_id.in_(_client_releases(scope)))
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        query.values(status=DeliveryStatus.SUPPRESSED.value, reason=reason[:40], updated_at=now)
    )
    return int(result.rowcount)


def _client_releases(slug: str) -> Any:
    """The ids of the releases of client ``slug`` (a subquery)."""
    return select(Release.id).join(Client, Client.id == Release.client_id).where(Client.slug == slug)


def delivery_topics(session: Session, delivery_id: int, contact_id: int) -> list[str]:
    """The topics a journalist can choose on the preference page: their beats, and the
    topics of the release the link came from, sorted."""
    beats = set(session.scalars(select(ContactBeat.beat).where(ContactBeat.contact_id == contact_id)))
    extra = session.scalar(
        select(Release.extra).join(Delivery, Delivery.release_id == Release.id).where(Delivery.id == delivery_id)
    )
    topics = set((extra or {}).get("topics") or ())
    return sorted(beats | topics)
