"""Returned mail kept for a person (``mailer bounces inbox``): notices matched without a
signed token (category ``review``: a Message-ID or an address can be guessed, so they
never act on a delivery) and whatever reaches ``postmaster@``, ``abuse@`` or the
feedback-loop address without being filed (category ``staff``, RFC 5321 4.5.1)."""

from __future__ import annotations

from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy.orm import Session

from mailer.bounces.policy import MAX_DETAIL, BounceOutcome, dedupe_key
from mailer.bounces.report import BounceReport, RecipientStatus
from mailer.store import bounces as bounce_store
from mailer.store.bounces import BounceTarget


def keep_for_staff(
    session: Session,
    staff: str,
    report: BounceReport,
    *,
    raw: bytes,
    raw_kept: str | None,
    fingerprint: str,
    now: datetime,
) -> BounceOutcome:
    """Writes: keep a message to the staff address ``staff`` (``KEPT``, or ``DUPLICATE``
    when it was kept before)."""
    headers = read_headers(raw)
    summary = f"{report.kind.value}" + (f" ({report.feedback_type})" if report.feedback_type else "")
    kept = bounce_store.keep_inbound(
        session,
        category="staff",
        envelope_to=staff,
        sender=header_text(headers, "From"),
        subject=header_text(headers, "Subject"),
        message_id=header_text(headers, "Message-ID"),
        delivery_id=None,
        summary=summary,
        raw=raw_kept,
        dedupe_key=dedupe_key(0, "staff", staff.lower(), fingerprint),
        now=now,
    )
    return BounceOutcome.KEPT if kept else BounceOutcome.DUPLICATE


def keep_for_review(
    session: Session,
    target: BounceTarget,
    recipient: RecipientStatus | None,
    report: BounceReport,
    *,
    raw: bytes,
    raw_kept: str | None,
    fingerprint: str,
    now: datetime,
) -> BounceOutcome:
    """Writes: keep a notice matched to ``target`` without a signed token for staff
    review, nothing else (``REVIEW``, or ``DUPLICATE`` when it was kept before)."""
    headers = read_headers(raw)
    parts = [report.kind.value]
    if report.feedback_type:
        parts.append(report.feedback_type)
    if recipient is not None:
        parts += [
            recipient.address,
            recipient.bounce_class.value,
            recipient.reason.value,
            " ".join(p for p in (recipient.status, recipient.diagnostic) if p),
        ]
    kept = bounce_store.keep_inbound(
        session,
        category="review",
        envelope_to=None,
        sender=header_text(headers, "From"),
        subject=header_text(headers, "Subject"),
        message_id=header_text(headers, "Message-ID"),
        delivery_id=target.delivery_id,
        summary=" | ".join(parts)[:MAX_DETAIL],
        raw=raw_kept,
        dedupe_key=dedupe_key(target.delivery_id, "review", None, fingerprint),
        now=now,
    )
    return BounceOutcome.REVIEW if kept else BounceOutcome.DUPLICATE


def read_headers(raw: bytes) -> Message:
    """The header block of ``raw``; empty when it cannot be parsed."""
    try:
        return BytesHeaderParser(policy=compat32).parsebytes(raw)
    except Exception:
        # Untrusted bytes; an unparsable head just means no headers to use.
        return Message()


def header_text(headers: Message, name: str) -> str | None:
    """A header's value as one unfolded line; None when absent or blank."""
    value = headers.get(name)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None
