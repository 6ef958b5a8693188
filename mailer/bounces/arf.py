"""RFC 5965 (ARF) feedback reports: ``Feedback-Type`` abuse, fraud or virus is a
recipient's complaint about our mail; auth-failure, not-spam, other (or anything else) is
feedback, a report to record that suppresses nobody."""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses

from mailer.bounces.notice import decoded, header, parts
from mailer.bounces.report import BounceClass, RecipientStatus
from mailer.domain.status import Reason

#: ARF feedback types (RFC 5965 7.3) that are a recipient's complaint about our mail.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus"})


def is_feedback_report(msg: Message) -> bool:
    """True for a ``multipart/report; report-type=feedback-report`` or any message with
    a ``message/feedback-report`` part."""
    report_type = str(msg.get_param("report-type") or "").lower()
    if msg.get_content_type() == "multipart/report" and report_type == "feedback-report":
        return True
    return any(p.get_content_type() == "message/feedback-report" for p in parts(msg))


def feedback_type(msg: Message) -> str:
    """The report's ``Feedback-Type`` (RFC 5965 3.1), lower case; ``abuse`` when missing
    (the most common and the one RFC 5965 7.3 lists first)."""
    value = header(feedback_fields(msg), "Feedback-Type") or "abuse"
    return value.split(";")[0].strip().lower() or "abuse"


def complaint_recipients(msg: Message, original: Message | None, reported: str) -> tuple[RecipientStatus, ...]:
    """The reported recipient: ``Original-Rcpt-To`` (RFC 5965 §3.5), else the original
    message's ``To``; ``reported`` is the report's feedback type."""
    fields = feedback_fields(msg)
    addresses = [a for _, a in getaddresses(fields.get_all("Original-Rcpt-To", []))]
    if not addresses and original is not None:
        addresses = [a for _, a in getaddresses(original.get_all("To", []))]
    reason = Reason.SPAM_BLOCKED if reported in COMPLAINT_TYPES else Reason.OTHER
    return tuple(
        RecipientStatus(a, "delivered", None, f"feedback: {reported}", BounceClass.SOFT, reason)
        for a in addresses
        if "@" in a
    )


def feedback_fields(msg: Message) -> Message:
    """The fields of the ``message/feedback-report`` part; empty when there is none."""
    for part in parts(msg):
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return HeaderParser().parsestr(decoded(part))
    return Message()
