"""The audit log of staff actions (append-only): :func:`record` is the one way in.

Recorded: sign-ins and failed sign-ins, exports, user and role changes, suppression
removals, approvals, schedule changes and settings (webhooks). Each entry has the actor
(the staff address; on the command line the name given with ``--as`` or
``$MAILER_USER``, which is a staff address once accounts exist), the time, the client IP
of a web request (None on the command line), the target and a detail.

The web app sets :data:`REQUEST_IP` for each request (:mod:`mailer.web.audit`), so any
layer records the IP without being handed it::

    audit.record(session, actor=approver, action="release.approve", target=f"release {rid}", now=now)
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.store.ledger.paging import Page, keyset
from mailer.store.tables import AuditEntry

#: the longest text kept in ``target`` and ``detail``
MAX_TEXT = 2000

#: The client address of the web request being served (None outside one).
REQUEST_IP: ContextVar[str | None] = ContextVar("mailer_request_ip", default=None)


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    ip: str | None
    detail: str | None


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    now: datetime,
    target: str | None = None,
    detail: str | None = None,
    ip: str | None = None,
) -> None:
    """Writes: one audit entry in the caller's transaction (it commits, or rolls back,
    with the action it records); long texts are cut to :data:`MAX_TEXT`. ``ip``
    defaults to the current web request's (:data:`REQUEST_IP`)."""
    ip = ip if ip is not None else REQUEST_IP.get()
    session.add(
        AuditEntry(
            at=now,
            actor=actor[:320],
            action=action[:40],
            target=target[:MAX_TEXT] if target else target,
            ip=ip[:64] if ip else ip,
            detail=detail[:MAX_TEXT] if detail else detail,
        )
    )


def audit_page(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page[AuditLine]:
    """Audit entries, newest first; ``actor`` matches case-insensitively, ``action`` exactly
    or, ending in ``.``, as a prefix (``user.``)."""
    query = select(
        AuditEntry.id,
        AuditEntry.at,
        AuditEntry.actor,
        AuditEntry.action,
        AuditEntry.target,
        AuditEntry.ip,
        AuditEntry.detail,
    )
    if actor is not None:
        query = query.where(func.lower(AuditEntry.actor) == actor.strip().lower())
    if action is not None:
        query = query.where(
            AuditEntry.action.startswith(action, autoescape=True)
            if action.endswith(".")
            else AuditEntry.action == action
        )
    return keyset(
        session,
        query,
        AuditEntry.id,
        after=after,
        before=before,
        limit=limit,
        descending=True,
        make=lambda r: AuditLine(*r),
        key=lambda line: line.id,
    )
