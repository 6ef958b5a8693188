"""Staff decisions on the research queue: confirm a new address as a contact (copied
from the old one: name, beats, tags, lists), confirm a topic suppression, or dismiss."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailer.audience import suppressions
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.replies import ResearchKind, ResearchStatus
from mailer.domain.states import SuppressionReason, topic_scope
from mailer.store import research as research_store


def confirm(
    session: Session,
    item_id: int,
    *,
    actor: str,
    now: datetime,
    email: str | None = None,
    outlet: str | None = None,
    topics: str | None = None,
) -> str:
    """Writes: confirm item ``item_id``; returns a line saying what was done.

    A new address: ``email`` (else the item's) becomes a contact copied from the old one,
    with ``outlet`` (else the item's); an address that is already a contact is left as
    it is. A topic: each of ``topics`` (comma-separated; else the item's) becomes a
    suppression of the old address in scope ``topic:NAME``.

    Raises NotFoundError for an unknown item, WorkflowError when it is not open,
    InputError when there is nothing to confirm (no address, no topic) or the address is bad.
    """
    item = research_store.get_item(session, item_id)
    if item is None:
        raise NotFoundError(f"no research item {item_id}")
    if item.status != ResearchStatus.OPEN.value:
        raise WorkflowError(f"research item {item_id} is {item.status}, not open")
    if item.kind == ResearchKind.NEW_ADDRESS.value:
        line = _new_contact(session, item.contact_id, email or item.new_email, outlet or item.new_outlet, now)
    else:
        line = _topics(session, item.old_email, topics or item.topics, actor=actor, now=now, item_id=item_id)
    research_store.resolve_item(session, item_id, ResearchStatus.CONFIRMED, actor=actor, now=now)
    return line


def dismiss(session: Session, item_id: int, *, actor: str, now: datetime) -> str:
    """Writes: dismiss an open item. Raises NotFoundError / WorkflowError."""
    if research_store.get_item(session, item_id) is None:
        raise NotFoundError(f"no research item {item_id}")
    if not research_store.resolve_item(session, item_id, ResearchStatus.DISMISSED, actor=actor, now=now):
        raise WorkflowError(f"research item {item_id} is not open")
    return "dismissed"


def _new_contact(session: Session, old_id: int | None, email: str | None, outlet: str | None, now: datetime) -> str:
    if not email:
        raise InputError("give the new address to confirm")
    address = normalize_email(email)
    if research_store.contact_id_of(session, address) is not None:
        return f"{address} is already a contact"
    if old_id is None:
        raise InputError("the old contact is gone: import the new address instead")
    research_store.copy_contact(session, old_id, email=address, outlet=outlet, now=now)
    return f"{address} added as a contact" + (f" at {outlet}" if outlet else "")


def _topics(session: Session, email: str | None, topics: str | None, *, actor: str, now: datetime, item_id: int) -> str:
    names = [t.strip() for t in (topics or "").split(",") if t.strip()]
    if not names:
        raise InputError("give the topic(s) to suppress")
    if email is None:
        raise InputError("the address was erased: nothing to suppress")
    for name in names:
        suppressions.suppress(
            session,
            email,
            reason=SuppressionReason.MANUAL,
            source=f"research item #{item_id}",
            now=now,
            scope=topic_scope(name),
            actor=actor,
            note="not their beat (reply)",
        )
    return f"{email} suppressed for topic{'s' if len(names) > 1 else ''} {', '.join(names)}"
