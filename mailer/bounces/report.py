"""What one returned message says, as values: its :class:`Kind`, one
:class:`RecipientStatus` per reported recipient (classified by
:func:`mailer.domain.status.classify_dsn`, the one classifier the live SMTP path uses too),
the raw VERP token and the returned original's Message-ID."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailer.domain.status import Fault, Reason, classify_dsn


class BounceClass(StrEnum):
    """Whether the address should be suppressed (hard) or merely retried later (soft)."""

    HARD = "hard"
    SOFT = "soft"


class Kind(StrEnum):
    """What a returned message is."""

    BOUNCE = "bounce"
    DELAY = "delay"
    COMPLAINT = "complaint"  # ARF abuse, fraud, virus
    FEEDBACK = "feedback"  # ARF auth-failure, not-spam, other: recorded, never acted on
    AUTO_REPLY = "auto_reply"
    NOT_BOUNCE = "not_bounce"


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's outcome. ``action`` is one of the RFC 3464 actions: failed,
    delayed, delivered, relayed, expanded."""

    address: str
    action: str
    status: str | None
    diagnostic: str | None
    bounce_class: BounceClass
    reason: Reason
    fault: Fault | None = None


@dataclass(frozen=True)
class BounceReport:
    """Everything a returned message says: its kind, the recipients it reports on, the
    raw VERP token it came back to, and the Message-ID of the original it returns."""

    kind: Kind
    recipients: tuple[RecipientStatus, ...]
    token: str | None
    original_message_id: str | None
    feedback_type: str | None = None


def classified(address: str, action: str, status: str | None, diagnostic: str | None) -> RecipientStatus:
    """The status of one reported recipient, as :func:`classify_dsn` reads its evidence."""
    verdict = classify_dsn(status, diagnostic, action=action)
    bounce_class = BounceClass.HARD if verdict.hard else BounceClass.SOFT
    reason = verdict.reason or Reason.OTHER
    return RecipientStatus(address, action, status, diagnostic, bounce_class, reason, verdict.fault)


def report_to_json(report: BounceReport, *, file: str | None = None) -> dict[str, object]:
    """A JSON-ready dict of ``report`` (``file`` names where it came from, if known)."""
    return {
        "file": file,
        "kind": report.kind.value,
        "recipients": [
            {
                "address": r.address,
                "action": r.action,
                "status": r.status,
                "diagnostic": r.diagnostic,
                "class": r.bounce_class.value,
                "reason": r.reason.value,
                "fault": r.fault.value if r.fault is not None else None,
            }
            for r in report.recipients
        ],
        "token": report.token,
        "original_message_id": report.original_message_id,
    }
