"""Unsubscribing: a journalist leaving through the link in a message (``/u/TOKEN``: the
page, RFC 8058 one-click, the topic preferences) or the ``mailto:`` unsubscribe address.

Every function takes an open session; the caller owns the transaction
(:func:`mailer.store.db.transaction`). An unsubscribe is a suppression
(:mod:`mailer.audience.suppressions` has the staff side: adding, lifting, reading) and
also stops the address's deliveries no worker has claimed yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason, topic_scope
from mailer.store import suppressions as suppression_store
from mailer.store import webhooks
from mailer.store.suppressions import NewDeliveryEvent, NewSuppression, UnsubscribeRow


class UnsubscribeChoice(StrEnum):
    """What a journalist asked to stop receiving."""

    CLIENT = "client"  # releases sent for this client
    ALL = "all"  # releases from everyone this firm sends for


#: Event kind recorded on the delivery whose link was used.
UNSUBSCRIBED_EVENT = "unsubscribed"


def mask_email(email: str | None) -> str:
    """``dana@harborledger.example.com`` → ``d***@harborledger.example.com``.

    Enough for a journalist to recognise their own address on the unsubscribe page,
    not enough for someone holding a forwarded link to learn it. None (an erased
    address) gives ``"your address"``.
    """
    if not email or "@" not in email:
        return "your address"
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


# --- unsubscribe ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicChoice:
    """One topic (beat) on the preference page."""

    name: str
    receiving: bool


@dataclass(frozen=True)
class UnsubscribePage:
    """What the unsubscribe page shows about one delivery."""

    delivery_id: int
    masked_email: str
    client_name: str
    client_slug: str
    #: already suppressed for every client
    everywhere: bool
    #: already suppressed for this client (or everywhere)
    for_client: bool
    #: topics the journalist can keep or drop, with whether they still receive each
    topics: tuple[TopicChoice, ...] = ()


def unsubscribe_page(session: Session, delivery_id: int) -> UnsubscribePage | None:
    """Reads only: who the link unsubscribes and what is already in place.

    None when the delivery does not exist (deleted with its release).
    """
    row = suppression_store.unsubscribe_row(session, delivery_id)
    if row is None:
        return None
    scopes = suppression_store.suppression_scopes(session, [row.email_hash]).get(row.email_hash, set())
    everywhere = GLOBAL_SCOPE in scopes
    topics = tuple(
        TopicChoice(t, topic_scope(t) not in scopes)
        for t in suppression_store.delivery_topics(session, row.delivery_id, row.contact_id)
    )
    return UnsubscribePage(
        delivery_id=row.delivery_id,
        masked_email=mask_email(row.email),
        client_name=row.client_name,
        client_slug=row.client_slug,
        everywhere=everywhere,
        for_client=everywhere or row.client_slug in scopes,
        topics=topics,
    )


@dataclass(frozen=True)
class Unsubscribed:
    """The outcome of :func:`unsubscribe`: what the confirmation page says."""

    delivery_id: int
    #: the recipient as the page shows it (:func:`mask_email`)
    masked_email: str
    client_name: str
    client_slug: str
    #: the scope asked for: a client slug or ``*``
    scope: str
    #: False when the address was already suppressed in that scope (a repeat)
    added: bool
    #: deliveries to the address that were stopped before being sent
    stopped: int


def unsubscribe(
    session: Session,
    delivery_id: int,
    choice: UnsubscribeChoice,
    *,
    source: str,
    now: datetime,
) -> Unsubscribed | None:
    """Writes: suppress the recipient of ``delivery_id`` and record an ``unsubscribed``
    event on that delivery. Returns None when the delivery does not exist.

    Scope: :attr:`UnsubscribeChoice.CLIENT` suppresses the address for the client the
    release was sent for; :attr:`UnsubscribeChoice.ALL` for every client (scope ``*``).
    RFC 8058 one-click means "remove me from the list this message came from", and each
    client is its own list here, so one-click and ``mailto:`` callers pass ``CLIENT``;
    only the preference page, where the journalist reads both choices, asks for ``ALL``.

    Repeats are harmless: the suppression is inserted once (ON CONFLICT DO NOTHING) and
    the event once per (delivery, scope) through its dedupe key, so a double click or a
    mail client that posts twice changes nothing more.
    """
    return unsubscribe_many(session, [UnsubscribeRequest(delivery_id, choice, source)], now=now)[0]


@dataclass(frozen=True)
class UnsubscribeRequest:
    """One unsubscribe for :func:`unsubscribe_many`."""

    delivery_id: int
    choice: UnsubscribeChoice
    source: str


def unsubscribe_many(
    session: Session, requests: Sequence[UnsubscribeRequest], *, now: datetime
) -> list[Unsubscribed | None]:
    """Writes: :func:`unsubscribe` for each of ``requests``, in order, with one statement
    per kind of write for all of them (the web process's writer groups concurrent
    one-clicks: :mod:`mailer.web.oneclick`). One outcome per request, None where the
    delivery does not exist; where two requests name the same address and scope, the
    first is the one that ``added`` it and ``stopped`` its deliveries."""
    rows = suppression_store.unsubscribe_rows(session, [r.delivery_id for r in requests])
    todo: list[tuple[UnsubscribeRequest, UnsubscribeRow, str]] = []
    outcomes: list[Unsubscribed | None] = []
    for request in requests:
        row = rows.get(request.delivery_id)
        if row is not None:
            scope = GLOBAL_SCOPE if request.choice is UnsubscribeChoice.ALL else row.client_slug
            todo.append((request, row, scope))
    added = suppression_store.suppress_many(
        session,
        [
            NewSuppression(row.email_hash, row.email, scope, f"{request.source} (delivery {request.delivery_id})")
            for request, row, scope in todo
        ],
        reason=SuppressionReason.UNSUBSCRIBED,
        now=now,
    )
    suppression_store.record_delivery_events(
        session,
        [
            NewDeliveryEvent(
                delivery_id=request.delivery_id,
                contact_id=row.contact_id,
                kind=UNSUBSCRIBED_EVENT,
                detail=f"scope {scope} via {request.source}",
                dedupe_key=f"unsubscribed:{request.delivery_id}:{scope}",
            )
            for request, row, scope in todo
        ],
        now=now,
    )
    stopped: dict[str, Counter[str]] = {}
    for scope in dict.fromkeys(scope for _, _, scope in todo):
        hashes = {row.email_hash for _, row, s in todo if s == scope}
        stopped[scope] = suppression_store.suppress_pending_many(
            session, hashes, scope=scope, reason=SuppressionReason.UNSUBSCRIBED.value, now=now
        )
    seen: set[tuple[str, str]] = set()
    webhook_data: list[dict[str, object]] = []
    done = iter(todo)
    for request in requests:
        if request.delivery_id not in rows:
            outcomes.append(None)
            continue
        _, row, scope = next(done)
        pair = (row.email_hash, scope)
        first = pair not in seen
        seen.add(pair)
        if first and pair in added:
            data = {"delivery_id": request.delivery_id, "email": row.email, "client": row.client_slug, "scope": scope}
            webhook_data.append({**data, "via": request.source})
        outcomes.append(
            Unsubscribed(
                delivery_id=request.delivery_id,
                masked_email=mask_email(row.email),
                client_name=row.client_name,
                client_slug=row.client_slug,
                scope=scope,
                added=first and pair in added,
                stopped=stopped[scope][row.email_hash] if first else 0,
            )
        )
    webhooks.emit_many(session, "contact.unsubscribed", webhook_data, now=now)
    # Nothing is read back for the answer: the writes above are all it reports, and the
    # fewer statements, the shorter SQLite's write lock is held.
    return outcomes


@dataclass(frozen=True)
class TopicsSaved:
    """The outcome of :func:`set_topics`."""

    page: UnsubscribePage
    dropped: tuple[str, ...]
    kept: tuple[str, ...]


def set_topics(session: Session, delivery_id: int, keep: set[str], *, now: datetime) -> TopicsSaved | None:
    """Writes: the journalist's topic choices from the preference page. Every offered
    topic not in ``keep`` gets a suppression in scope ``topic:NAME`` (releases that name
    the topic leave the address out, checked again when rows are claimed); a kept topic
    that was dropped before is taken back (logged, actor "recipient"). Topics that were
    not offered are ignored. Returns None when the delivery does not exist."""
    row = suppression_store.unsubscribe_row(session, delivery_id)
    if row is None:
        return None
    offered = suppression_store.delivery_topics(session, delivery_id, row.contact_id)
    dropped: list[str] = []
    for topic in offered:
        scope = topic_scope(topic)
        if topic in keep:
            existing = suppression_store.get_suppression(session, row.email_hash, scope)
            if existing is not None:
                suppression_store.log_suppression_change(
                    session,
                    row.email_hash,
                    scope=scope,
                    action="removed",
                    reason="chosen again on the preference page",
                    actor="recipient",
                    now=now,
                )
                session.delete(existing)
            continue
        dropped.append(topic)
        suppression_store.suppress_hash(
            session,
            row.email_hash,
            email=row.email,
            reason=SuppressionReason.UNSUBSCRIBED,
            source=f"{SOURCE_TOPICS} (delivery {delivery_id})",
            now=now,
            scope=scope,
        )
    session.flush()
    page = unsubscribe_page(session, delivery_id)
    assert page is not None
    return TopicsSaved(page, tuple(dropped), tuple(t for t in offered if t in keep))


#: Source recorded on topic opt-outs.
SOURCE_TOPICS = "preference page, topics"
