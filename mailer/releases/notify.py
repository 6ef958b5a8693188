"""Notification mail to staff about their releases (issue 21), queued in the transaction
of what they report and sent by :func:`deliver_pending` through the configured SMTP relay
(``[smtp]``, the proof path; never the bulk path, never a delivery row).

Who is told:

    submitted              approvers and admins
    approved               the author
    changes requested      the author (with the note)
    returned to draft      the author (an edit after submission, or changed content at send)
    needs approval again   the author and the approver (the send time moved earlier, or the
                           rendered bytes changed since approval, e.g. after a library upgrade)
    paused                 the author (the breaker, a sender refusal, the send fence, a person)
    finished               the author: the summary of the send

Only active users with notifications on are told (``users.notify``; the account page
turns it off); an author who is no user (an install without accounts) is not told.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy.orm import Session, sessionmaker

from mailer.config import Settings
from mailer.domain.states import Outcome, Role
from mailer.releases.proof import proof_transport
from mailer.smtp.transport import Transport
from mailer.store import notifications as note_store
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.db import transaction

__all__ = ["deliver_pending", "deliver_queued", "tell", "tell_approvers", "tell_author"]

log = logging.getLogger("mailer.releases.notify")


def _link(settings: Settings, release_id: int) -> str:
    return f"{settings.web.base_url.rstrip('/')}/releases/{release_id}"


def tell(
    session: Session,
    addresses: list[str],
    *,
    kind: str,
    release_id: int,
    subject: str,
    text: str,
    settings: Settings,
    now: datetime,
) -> int:
    """Writes: queue one notification to each of ``addresses`` that is a user taking
    them; returns how many were queued."""
    body = f"{text}\n\n{_link(settings, release_id)}\n\n-- \nmailer (turn these off on your account page)\n"
    queued = 0
    for address in note_store.notifiable(session, addresses):
        note_store.add_notification(
            session, to_address=address, kind=kind, release_id=release_id, subject=subject, body=body, now=now
        )
        queued += 1
    return queued


def tell_author(
    session: Session,
    release_id: int,
    *,
    kind: str,
    what: str,
    text: str,
    settings: Settings,
    now: datetime,
    also_approver: bool = False,
) -> int:
    """Writes: tell the release's author (and, with ``also_approver``, its latest approver)."""
    release = release_store.get_release(session, release_id)
    who = [release.author]
    if also_approver:
        approval = review_store.latest_approval(session, release_id)
        if approval is not None:
            who.append(approval.approver)
    subject = f"Release {release_id} {what}: {release.title}"[:480]
    return tell(session, who, kind=kind, release_id=release_id, subject=subject, text=text, settings=settings, now=now)


def tell_approvers(session: Session, release_id: int, *, actor: str, settings: Settings, now: datetime) -> int:
    """Writes: tell approvers and admins (not ``actor``) that a release waits for approval."""
    release = release_store.get_release(session, release_id)
    who = [a for a in note_store.users_with_roles(session, [Role.APPROVER.value, Role.ADMIN.value])]
    who = [a for a in who if a.casefold() != actor.casefold() and a.casefold() != release.author.casefold()]
    subject = f"Release {release_id} waits for your approval: {release.title}"[:480]
    text = f'{actor} submitted release {release_id}, "{release.title}", for approval.'
    return tell(
        session, who, kind="submitted", release_id=release_id, subject=subject, text=text, settings=settings, now=now
    )


def _message(settings: Settings, to_address: str, subject: str, body: str, now: datetime) -> tuple[str, bytes]:
    sender = settings.notify.from_address
    msg = EmailMessage()
    msg["From"] = f"mailer <{sender}>"
    msg["To"] = to_address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<notice.{uuid.uuid4().hex}@{settings.sender.message_id_domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return sender, msg.as_bytes()


async def deliver_pending(
    sessions: sessionmaker[Session], transport: Transport, settings: Settings, now: datetime, *, limit: int = 50
) -> int:
    """Send queued notifications through ``transport``; returns how many went out. A
    refusal is recorded on the row (tried again later, at most 5 times)."""

    def load() -> list[tuple[int, str, str, str]]:
        with transaction(sessions) as session:
            return [(n.id, n.to_address, n.subject, n.body) for n in note_store.pending(session, limit=limit)]

    sent = 0
    for note_id, to_address, subject, body in await asyncio.to_thread(load):
        sender, data = _message(settings, to_address, subject, body, now)
        result = await transport.send(sender, to_address, data)
        ok = result.outcome is Outcome.SENT

        def record(note_id: int = note_id, ok: bool = ok, reply: str = result.reply) -> None:
            with transaction(sessions) as session:
                if ok:
                    note_store.mark_sent(session, note_id, now)
                else:
                    note_store.mark_failed(session, note_id, reply)

        await asyncio.to_thread(record)
        if ok:
            sent += 1
        else:
            log.warning("notification %s to %s refused: %s", note_id, to_address, result.reply)
    return sent


async def deliver_queued(sessions: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """:func:`deliver_pending` over a connection of its own to ``[smtp]`` (the proof path),
    opened only when something waits; 0 when notifications are off."""
    if not settings.notify.enabled:
        return 0

    def waiting() -> bool:
        with transaction(sessions) as session:
            return bool(note_store.pending(session, limit=1))

    if not await asyncio.to_thread(waiting):
        return 0
    async with proof_transport(settings) as transport:
        return await deliver_pending(sessions, transport, settings, now)
