"""Queries about replies to releases (:mod:`mailer.inbound`): the delivery a reply is
about, the reply itself, its forward in the outbox, and the reads the inbox, the report
and other features use (:func:`contacts_who_replied`).

Callers own the transaction (:func:`mailer.store.db.transaction`); nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailer.domain.replies import PERSONAL_KINDS, ReplyKind
from mailer.store.contacts import insert_ignoring_conflicts
from mailer.store.deliveries import rowcount
from mailer.store.tables import Client, Contact, Delivery, Release, Reply, ReplyForward

# --- the delivery a reply is about --------------------------------------------------------


@dataclass(frozen=True)
class ReplyContext:
    """A delivery a reply names, with what recording, acting and forwarding need."""

    delivery_id: int
    release_id: int
    release_title: str
    release_reply_to: str | None
    topics: tuple[str, ...]
    client_slug: str
    client_name: str
    client_reply_to: str | None
    contact_id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    outlet: str | None


def reply_context(session: Session, delivery_id: int) -> ReplyContext | None:
    """The delivery ``delivery_id`` with its release, client and contact; None when gone."""
    row = session.execute(
        select(Delivery, Release, Client, Contact)
        .join(Release, Release.id == Delivery.release_id)
        .join(Client, Client.id == Release.client_id)
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id == delivery_id)
    ).first()
    if row is None:
        return None
    delivery, release, client, contact = row
    extra: dict[str, Any] = release.extra or {}
    return ReplyContext(
        delivery_id=delivery.id,
        release_id=release.id,
        release_title=release.title,
        release_reply_to=extra.get("reply_to") or None,
        topics=tuple(extra.get("topics") or ()),
        client_slug=client.slug,
        client_name=client.name,
        client_reply_to=client.reply_to,
        contact_id=contact.id,
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        outlet=contact.outlet,
    )


# --- recording ----------------------------------------------------------------------------


def record_reply(session: Session, values: dict[str, Any]) -> int | None:
    """Writes: one reply row (``values`` are its columns, ``dedupe_key`` included).
    Returns its id, or None when a reply with that key was recorded before."""
    stmt = insert_ignoring_conflicts(session, Reply).values(**values)
    return session.execute(stmt.returning(Reply.id)).scalar_one_or_none()


def set_reply_action(session: Session, reply_id: int, action: str, detail: str | None) -> None:
    """Writes: what capturing reply ``reply_id`` did."""
    session.execute(update(Reply).where(Reply.id == reply_id).values(action=action, action_detail=detail))


def mark_undone(session: Session, reply_id: int, *, actor: str, now: datetime) -> bool:
    """Writes: reply ``reply_id``'s action was undone by ``actor``; False when it already was."""
    return (
        rowcount(
            session.execute(
                update(Reply)
                .where(Reply.id == reply_id, Reply.undone_at.is_(None))
                .values(undone_at=now, undone_by=actor)
            )
        )
        == 1
    )


def get_reply(session: Session, reply_id: int) -> Reply | None:
    """The reply with this id, or None."""
    return session.get(Reply, reply_id)


# --- the forward outbox ------------------------------------------------------------------


def enqueue_forward(
    session: Session, *, reply_id: int, sender: str, recipient: str, message: bytes, now: datetime
) -> None:
    """Writes: put the complete forward of reply ``reply_id`` in the outbox, due now."""
    session.add(
        ReplyForward(
            reply_id=reply_id,
            sender=sender,
            recipient=recipient,
            message=message,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    session.flush()


@dataclass(frozen=True)
class DueForward:
    """A forward taken from the outbox to send."""

    id: int
    reply_id: int
    sender: str
    recipient: str
    message: bytes
    attempts: int


def claim_due_forwards(session: Session, *, now: datetime, lease_until: datetime, limit: int) -> list[DueForward]:
    """Writes: take up to ``limit`` unsent forwards whose time has come, moving their next
    try to ``lease_until`` so that another forwarder does not take them meanwhile (each
    row is taken only if its next try is still the one read: two forwarders never both win)."""
    rows = session.execute(
        select(ReplyForward)
        .where(ReplyForward.sent_at.is_(None), ReplyForward.next_attempt_at <= now)
        .order_by(ReplyForward.next_attempt_at, ReplyForward.id)
        .limit(limit)
    ).scalars()
    taken: list[DueForward] = []
    for row in list(rows):
        won = session.execute(
            update(ReplyForward)
            .where(ReplyForward.id == row.id, ReplyForward.next_attempt_at == row.next_attempt_at)
            .values(next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if rowcount(won) == 1:
            taken.append(DueForward(row.id, row.reply_id, row.sender, row.recipient, bytes(row.message), row.attempts))
    return taken


def forward_sent(session: Session, forward_id: int, *, now: datetime) -> None:
    """Writes: the forward was accepted by the relay."""
    session.execute(
        update(ReplyForward)
        .where(ReplyForward.id == forward_id)
        .values(sent_at=now, attempts=ReplyForward.attempts + 1, last_error=None)
    )


def forward_failed(session: Session, forward_id: int, *, error: str, next_attempt_at: datetime) -> None:
    """Writes: a try of the forward failed; it is tried again at ``next_attempt_at``."""
    session.execute(
        update(ReplyForward)
        .where(ReplyForward.id == forward_id)
        .values(attempts=ReplyForward.attempts + 1, last_error=error[:1000], next_attempt_at=next_attempt_at)
    )


def forward_of(session: Session, reply_id: int) -> ReplyForward | None:
    """The forward of reply ``reply_id``, if one was queued."""
    return session.scalar(select(ReplyForward).where(ReplyForward.reply_id == reply_id))


def unsent_forwards(session: Session) -> int:
    """Forwards not yet accepted by the relay."""
    return session.scalar(select(func.count()).select_from(ReplyForward).where(ReplyForward.sent_at.is_(None))) or 0


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyRow:
    """One reply as the inbox, ``mailer replies list`` and the API show it."""

    id: int
    received_at: datetime
    release_id: int | None
    delivery_id: int | None
    contact_id: int | None
    email: str | None
    sender: str | None
    subject: str | None
    kind: str
    evidence: str | None
    return_date: datetime | None
    new_email: str | None
    new_outlet: str | None
    action: str
    action_detail: str | None
    undone_at: datetime | None
    undone_by: str | None
    channel: str
    text: str | None
    forward_to: str | None
    forwarded_at: datetime | None
    forward_error: str | None

    def as_json(self) -> dict[str, Any]:
        """The row as JSON values (times in ISO 8601)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out


def list_replies(
    session: Session,
    *,
    release_id: int | None = None,
    contact_id: int | None = None,
    kind: str | None = None,
    reply_id: int | None = None,
    limit: int = 500,
) -> list[ReplyRow]:
    """Replies, newest first, filtered by release, contact, kind (or one reply by id)."""
    stmt = (
        select(Reply, Contact.email, ReplyForward.recipient, ReplyForward.sent_at, ReplyForward.last_error)
        .outerjoin(Contact, Contact.id == Reply.contact_id)
        .outerjoin(ReplyForward, ReplyForward.reply_id == Reply.id)
        .order_by(Reply.id.desc())
        .limit(limit)
    )
    if release_id is not None:
        stmt = stmt.where(Reply.release_id == release_id)
    if contact_id is not None:
        stmt = stmt.where(Reply.contact_id == contact_id)
    if kind is not None:
        stmt = stmt.where(Reply.kind == kind)
    if reply_id is not None:
        stmt = stmt.where(Reply.id == reply_id)
    return [
        ReplyRow(
            id=r.id,
            received_at=r.received_at,
            release_id=r.release_id,
            delivery_id=r.delivery_id,
            contact_id=r.contact_id,
            email=email,
            sender=r.sender,
            subject=r.subject,
            kind=r.kind,
            evidence=r.evidence,
            return_date=r.return_date,
            new_email=r.new_email,
            new_outlet=r.new_outlet,
            action=r.action,
            action_detail=r.action_detail,
            undone_at=r.undone_at,
            undone_by=r.undone_by,
            channel=r.channel,
            text=r.text,
            forward_to=to,
            forwarded_at=sent_at,
            forward_error=error,
        )
        for r, email, to, sent_at, error in session.execute(stmt)
    ]


def reply_counts(session: Session, release_id: int) -> dict[str, int]:
    """A release's replies by kind (only kinds that occur)."""
    rows = session.execute(select(Reply.kind, func.count()).where(Reply.release_id == release_id).group_by(Reply.kind))
    return {kind: int(n) for kind, n in rows}


def reply_counts_by_release(session: Session, release_ids: Iterable[int]) -> dict[int, int]:
    """How many replies each of ``release_ids`` has (releases without any are left out)."""
    ids = list(release_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Reply.release_id, func.count()).where(Reply.release_id.in_(ids)).group_by(Reply.release_id)
    )
    return {int(release_id): int(n) for release_id, n in rows if release_id is not None}


def contacts_who_replied(session: Session, release_id: int, *, kinds: Iterable[ReplyKind] = PERSONAL_KINDS) -> set[int]:
    """The contacts who replied to release ``release_id``: by default the replies a person
    wrote (:data:`mailer.domain.replies.PERSONAL_KINDS`: not out-of-office or other
    automatic mail). For a follow-up that must not chase people who already answered."""
    rows = session.scalars(
        select(Reply.contact_id)
        .where(
            Reply.release_id == release_id,
            Reply.contact_id.is_not(None),
            Reply.kind.in_([ReplyKind(k).value for k in kinds]),
        )
        .distinct()
    )
    return {int(contact_id) for contact_id in rows if contact_id is not None}
