"""Suppressions: who must never be mailed again, and how they got there or left.

The operations the web pages, the CLI and bounce processing share:

* :func:`suppress` / :func:`lift` — staff (or bounce processing) adding and removing,
  every change by a person logged with who and why;
* :func:`find` / :func:`export_csv` — reading the list.

Every function takes an open session; the caller owns the transaction
(:func:`mailer.store.db.transaction`). Suppressions are sticky: only :func:`lift` removes one.
A suppression also stops the deliveries to that address that no worker has claimed yet
(queued, deferred), so it is honored for the rest of a release that is being sent.
"""

from __future__ import annotations

import csv
import getpass
import os
from collections.abc import Iterator
from datetime import datetime
from typing import IO

from sqlalchemy.orm import Session

from mailer.audience.contactfields import neutralize
from mailer.domain.addresses import parse_suppression_target
from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import GLOBAL_SCOPE, TOPIC_PREFIX, SuppressionReason, email_hash
from mailer.store import audit
from mailer.store import suppressions as suppression_store
from mailer.store.tables import Suppression


def default_actor() -> str:
    """Who is acting when ``--as`` is not given: ``$MAILER_USER``, else the OS login."""
    user = os.environ.get("MAILER_USER", "").strip()
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


# --- staff and bounce processing ------------------------------------------------------------


def check_scope(session: Session, scope: str) -> str:
    if scope.startswith(TOPIC_PREFIX) and len(scope) > len(TOPIC_PREFIX):
        return scope
    if scope != GLOBAL_SCOPE and not suppression_store.client_exists(session, scope):
        raise NotFoundError(f"no client {scope!r}: a scope is '*' (every client), a client slug, or topic:NAME")
    return scope


#: Suppressions that say something about the address itself (it bounced, its owner
#: complained): lifted only with a note of how the person agreed again (re-consent).
NEEDS_RECONSENT = frozenset({SuppressionReason.HARD_BOUNCE, SuppressionReason.SOFT_BOUNCE, SuppressionReason.COMPLAINT})


def suppress(
    session: Session,
    email: str,
    *,
    reason: SuppressionReason,
    source: str,
    now: datetime,
    scope: str = GLOBAL_SCOPE,
    actor: str | None = None,
    note: str | None = None,
) -> bool:
    """Writes: suppress ``email`` — an address (normalized here), ``@domain`` (everyone at
    that domain) or ``*.domain`` (that domain and every domain under it) — in ``scope``,
    and stop the unclaimed deliveries it covers there. With ``actor`` (a person, not a
    process) the addition is logged with ``note`` in the suppression log.

    Returns False when it was already suppressed in that scope (the first reason is
    kept). Raises InputError for anything that is not an address or a domain form (a
    would-be pattern like ``*@example.com`` included), NotFoundError for a scope that
    names no client.
    """
    target = parse_suppression_target(email)
    check_scope(session, scope)
    hashed = email_hash(target.text)
    detail = f"{source}: {note}" if note else source
    if target.is_domain:
        added = suppression_store.add_domain_suppression(
            session, target, reason=reason, source=detail, now=now, scope=scope
        )
    else:
        added = suppression_store.suppress_hash(
            session, hashed, email=target.text, reason=reason, source=detail, now=now, scope=scope
        )
    if added and actor is not None:
        suppression_store.log_suppression_change(
            session, hashed, scope=scope, action="added", reason=note or reason.value, actor=actor, now=now
        )
    if target.is_domain:
        suppression_store.suppress_pending_at_domain(session, scope=scope, reason=reason.value, now=now)
    else:
        suppression_store.suppress_pending_deliveries(session, hashed, scope=scope, reason=reason.value, now=now)
    return added


def lift(
    session: Session,
    email: str,
    *,
    scope: str,
    reason: str,
    actor: str,
    now: datetime,
    reconsent: str | None = None,
) -> None:
    """Writes: remove the suppression of ``email`` (an address, ``@domain`` or
    ``*.domain``) in ``scope``, logging ``actor`` and ``reason``. Deliveries already
    marked suppressed stay so.

    A bounce or complaint suppression (:data:`NEEDS_RECONSENT`) is lifted only with
    ``reconsent``: a note of how the person asked for mail again (or confirmed the
    address works); it is logged as ``removed (re-consent)``.

    Raises InputError for a bad address, an empty reason, or a bounce/complaint without
    a re-consent note; NotFoundError when there is no such suppression (other scopes
    are never touched).
    """
    target = parse_suppression_target(email)
    if not reason.strip():
        raise InputError("a reason is required to lift a suppression")
    found = suppression_store.get_suppression(session, email_hash(target.text), scope)
    if found is None:
        raise NotFoundError(f"{target.text} is not suppressed in scope {scope!r}")
    note = reason.strip()
    action = "removed"
    if SuppressionReason(found.reason) in NEEDS_RECONSENT:
        if reconsent is None or not reconsent.strip():
            raise InputError(
                f"{target.text} is suppressed because of a {found.reason.replace('_', ' ')}: it is lifted only with "
                "a re-consent note saying how the person asked for mail again (--re-consent TEXT)"
            )
        note = f"{note} | re-consent: {reconsent.strip()}"
        action = "removed (re-consent)"
    suppression_store.remove_suppression(
        session, target.text, scope=scope, reason=note[:2000], actor=actor, now=now, action=action
    )
    audit.record(
        session,
        actor=actor,
        action="suppression.remove",
        target=target.text,
        detail=f"scope {scope}: {note}"[:2000],
        now=now,
    )


def find(
    session: Session,
    *,
    reason: SuppressionReason | None = None,
    scope: str | None = None,
    email: str | None = None,
) -> Iterator[Suppression]:
    """Suppressions matching every filter given, oldest first. ``email`` matches by hash,
    so it finds erased addresses too. Raises InputError for a bad address."""
    hashed = email_hash(parse_suppression_target(email).text) if email is not None else None
    return suppression_store.find_suppressions(session, reason=reason, scope=scope, hashed=hashed)


EXPORT_COLUMNS = ("email", "email_hash", "scope", "reason", "source", "created_at")


def export_csv(session: Session, out: IO[str]) -> int:
    """Write every suppression as CSV (formula-safe cells) to ``out``; returns the row count.

    Erased addresses have an empty ``email`` and keep their ``email_hash``.
    """
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for s in suppression_store.find_suppressions(session):
        cells = [s.email or "", s.email_hash, s.scope, s.reason, s.source, s.created_at.isoformat()]
        writer.writerow([neutralize(c) for c in cells])
        count += 1
    return count
