"""Helpers for bounce-processing tests: ledger rows to bounce against, a processor on the
test runtime, notices written to order, and readers of what was recorded."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mailer.bounces.domains import ClientBounceDomains
from mailer.bounces.process import BounceProcessor
from mailer.config import BounceSettings
from mailer.domain.states import email_hash
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Client, Contact, Delivery, DeliveryEvent, InboundMail, Release, Suppression
from tests.support.constants import FIXED_NOW

CORPUS = Path(__file__).resolve().parents[1] / "bounces" / "data"
BOUNCE_DOMAIN = "bounces.example.com"
_serial = itertools.count(1)


@dataclass(frozen=True)
class Sent:
    """A delivery row in state ``sent`` (or as asked) for one contact."""

    delivery_id: int
    contact_id: int
    email: str
    message_id: str
    client_slug: str


def send_to(rt: Runtime, email: str, *, client: str = "harbor", status: str = "sent") -> Sent:
    """Create (or reuse) the client and contact, a new release, and one delivery to
    ``email``, as the delivery engine leaves them after handing the message over."""
    n = next(_serial)
    with transaction(rt.sessions) as session:
        client_row = session.scalar(select(Client).where(Client.slug == client))
        if client_row is None:
            client_row = Client(
                slug=client,
                name=client.title(),
                from_name=client.title(),
                from_address=f"press@{client}.example.org",
                reply_to=None,
                postal_address="1 Quay Street, Portsmouth",
                disclosure=None,
                created_at=FIXED_NOW,
            )
            session.add(client_row)
            session.flush()
        contact = session.scalar(select(Contact).where(Contact.email == email))
        if contact is None:
            contact = Contact(
                email=email, email_hash=email_hash(email), attributes={}, created_at=FIXED_NOW, updated_at=FIXED_NOW
            )
            session.add(contact)
            session.flush()
        release = Release(
            client_id=client_row.id,
            title=f"Release {n}",
            subject=f"Release {n}",
            template="press_release",
            body="Body",
            extra={},
            status="sent",
            author="pub@harbor.example.org",
            created_at=FIXED_NOW,
            updated_at=FIXED_NOW,
        )
        session.add(release)
        session.flush()
        message_id = f"<rel-{release.id}.d-{n}@mail.example.com>"
        delivery = Delivery(
            release_id=release.id,
            contact_id=contact.id,
            email=email,
            email_hash=email_hash(email),
            domain=email.split("@")[1],
            status=status,
            message_id=message_id,
            attempts=1,
            sent_at=FIXED_NOW,
            updated_at=FIXED_NOW,
        )
        session.add(delivery)
        session.flush()
        return Sent(delivery.id, contact.id, email, message_id, client)


def processor(rt: Runtime, *, clock: Callable[[], datetime] | None = None, **policy: Any) -> BounceProcessor:
    """A processor on the test runtime; ``policy`` overrides ``BounceSettings`` keys."""
    settings = BounceSettings(**{**rt.settings.bounces.model_dump(), **policy})
    return BounceProcessor(
        rt.sessions,
        policy=settings,
        tokens=Tokens.from_settings(rt.settings),
        bounce_domain=rt.settings.sender.bounce_domain,
        clock=clock or rt.clock,
        client_domains=ClientBounceDomains(rt.sessions, rt.settings),
    )


def verp(rt: Runtime, delivery_id: int) -> str:
    """The genuine ``bounces+TOKEN@`` address of a delivery."""
    return Tokens.from_settings(rt.settings).verp_address(delivery_id, rt.settings.sender.bounce_domain)


def dsn(
    recipient: str,
    *,
    to: str,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
    original_message_id: str | None = None,
    own_id: str | None = None,
) -> bytes:
    """An RFC 3464 notice about ``recipient``, delivered to ``to`` (the envelope
    recipient, as ``Delivered-To``)."""
    own_id = own_id or f"<notice-{next(_serial)}@mx.example.net>"
    original = f"Message-ID: {original_message_id}\r\n" if original_message_id else ""
    text = f"""Delivered-To: {to}
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: {own_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: {diagnostic.format(rcpt=recipient)}

--B
Content-Type: text/rfc822-headers

{original}From: press@harbor.example.org
To: {recipient}
Subject: Release

--B--
"""
    return text.replace("\n", "\r\n").encode()


def delivery(rt: Runtime, delivery_id: int) -> Delivery:
    with transaction(rt.sessions) as session:
        found = session.get(Delivery, delivery_id)
        assert found is not None
        return found


def contact(rt: Runtime, contact_id: int) -> Contact:
    with transaction(rt.sessions) as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        return found


def events(rt: Runtime, delivery_id: int | None = None) -> list[DeliveryEvent]:
    with transaction(rt.sessions) as session:
        stmt = select(DeliveryEvent).order_by(DeliveryEvent.id)
        if delivery_id is not None:
            stmt = stmt.where(DeliveryEvent.delivery_id == delivery_id)
        return list(session.scalars(stmt))


def suppressions(rt: Runtime) -> dict[tuple[str | None, str], Suppression]:
    """Every suppression keyed by (email, scope)."""
    with transaction(rt.sessions) as session:
        return {(s.email, s.scope): s for s in session.scalars(select(Suppression))}


def arf(
    complainer: str,
    *,
    feedback_type: str = "abuse",
    to: str = "fbl@bounces.example.com",
    return_path: str | None = None,
    original_message_id: str | None = None,
    own_id: str | None = None,
) -> bytes:
    """An RFC 5965 feedback report about a message to ``complainer``; the enclosed
    original carries ``return_path`` (a VERP address) and ``original_message_id``."""
    own_id = own_id or f"<arf-{next(_serial)}@fbl.example.net>"
    original = f"Return-Path: <{return_path}>\n" if return_path else ""
    original += f"Message-ID: {original_message_id}\n" if original_message_id else ""
    text = f"""From: Feedback Loop <fbl@fbl.example.net>
To: {to}
Subject: FW: Release
Message-ID: {own_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.25.

--F
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: {complainer}
Arrival-Date: Tue, 24 Nov 2026 18:39:52 +0000

--F
Content-Type: message/rfc822

{original}From: press@harbor.example.org
To: {complainer}
Subject: Release

Body.
--F--
"""
    return text.replace("\n", "\r\n").encode()


def inbox(rt: Runtime) -> list[InboundMail]:
    """Every message kept for staff, oldest first."""
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(InboundMail).order_by(InboundMail.id)))
