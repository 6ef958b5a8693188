"""Vocabulary and rules: states, transitions, contact fields. No I/O.

States are stored as their string values. Transition tables are the only place that
says which moves are legal; code asks :func:`release_can_move` instead of comparing
states by hand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from mailer.errors import WorkflowError


class ReleaseStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    PARTIAL = "partial"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    BOUNCED = "bounced"


#: Delivery states that no longer need work (the release may finish).
TERMINAL_DELIVERY = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.SUPPRESSED,
        DeliveryStatus.CANCELLED,
        DeliveryStatus.BOUNCED,
    }
)

_RELEASE_MOVES: dict[ReleaseStatus, frozenset[ReleaseStatus]] = {
    ReleaseStatus.DRAFT: frozenset({ReleaseStatus.SUBMITTED, ReleaseStatus.CANCELLED}),
    ReleaseStatus.SUBMITTED: frozenset({ReleaseStatus.APPROVED, ReleaseStatus.DRAFT, ReleaseStatus.CANCELLED}),
    ReleaseStatus.APPROVED: frozenset({ReleaseStatus.SENDING, ReleaseStatus.DRAFT, ReleaseStatus.CANCELLED}),
    ReleaseStatus.SENDING: frozenset(
        {
            ReleaseStatus.PAUSED,
            ReleaseStatus.SENT,
            ReleaseStatus.PARTIAL,
            ReleaseStatus.CANCELLED,
        }
    ),
    ReleaseStatus.PAUSED: frozenset({ReleaseStatus.SENDING, ReleaseStatus.CANCELLED}),
    ReleaseStatus.SENT: frozenset({ReleaseStatus.SENDING}),  # staff retry of unknown/failed rows
    ReleaseStatus.PARTIAL: frozenset({ReleaseStatus.SENDING}),
    ReleaseStatus.CANCELLED: frozenset(),
}


def release_can_move(src: ReleaseStatus, dst: ReleaseStatus) -> bool:
    """True when the release state machine allows ``src → dst``."""
    return dst in _RELEASE_MOVES[src]


def require_release_move(src: ReleaseStatus, dst: ReleaseStatus) -> None:
    """Raise :class:`WorkflowError` unless ``src → dst`` is allowed."""
    if not release_can_move(src, dst):
        raise WorkflowError(f"a {src.value} release cannot become {dst.value}")


class OutletType(StrEnum):
    PRINT = "print"
    TV = "tv"
    RADIO = "radio"
    ONLINE = "online"
    WIRE = "wire"
    PODCAST = "podcast"
    NEWSLETTER = "newsletter"


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    ERASED = "erased"


#: Suppression scope meaning "every client".
GLOBAL_SCOPE = "*"
#: Suppression scopes for a topic a journalist no longer wants ("topic:foreign-policy"),
#: honored by every release that names the topic in its front matter.
TOPIC_PREFIX = "topic:"


def topic_scope(topic: str) -> str:
    return TOPIC_PREFIX + topic


def send_scopes(client_slug: str, topics: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """Every suppression scope that stops a release of ``client_slug`` about ``topics``."""
    return (GLOBAL_SCOPE, client_slug, *(topic_scope(t) for t in topics))


class Role(StrEnum):
    ADMIN = "admin"
    PUBLICIST = "publicist"
    APPROVER = "approver"
    VIEWER = "viewer"


def email_hash(normalized_email: str) -> str:
    """Stable hash of a normalized address; suppressions match on it (and survive erasure)."""
    return hashlib.sha256(normalized_email.encode("utf-8")).hexdigest()


# --- SMTP replies --------------------------------------------------------------------


class Outcome(StrEnum):
    """What one delivery attempt came to."""

    SENT = "sent"
    DEFERRED = "deferred"  # try again later
    FAILED = "failed"  # permanent: do not retry
    UNKNOWN = "unknown"  # the data may have been accepted; never resent automatically


class FailureKind(StrEnum):
    """Why a permanent failure happened, which decides what to do about the address."""

    RECIPIENT = "recipient"  # the address is dead: suppress (hard bounce)
    POLICY = "policy"  # the server refuses us or the content: never the recipient's fault
    MESSAGE = "message"  # this message (size, content) was refused
    OTHER = "other"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    kind: FailureKind | None = None


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_status(message: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply text, if any."""
    m = _ENHANCED.search(message[:40])
    return m.group(0) if m else None


def classify_reply(code: int, message: str, *, stage: str) -> Verdict:
    """Decide what an SMTP reply means for a delivery. The one place this is decided.

    ``stage`` is the command the reply answered: ``mail``, ``rcpt``, ``data`` (the final
    reply after the message data) or ``connect``.

    * 2xx: sent.
    * 4xx: deferred (RFC 5321 4.2.1: transient negative completion).
    * 552 at RCPT: deferred. RFC 5321 4.5.3.1.10 notes that 552 "too many recipients"
      at RCPT must be treated as temporary, and old servers send 552 for a full mailbox
      (RFC 3463 5.2.2 is "mailbox full", a persistent-transient condition).
    * 5.1.x (bad destination address) and 5.2.1 (mailbox disabled): failed, the address
      is dead (RFC 3463 section 3.2/3.3) — the recipient is suppressed.
    * 5.7.x (security or policy status, RFC 3463 3.8): failed, but it is about us or the
      content, never the recipient's address — never suppress on it.
    * 5.3.4 / 5.2.3 (message too big): failed for this message only.
    * Other 5xx without a telling enhanced code: failed, kind other (no suppression: a
      bare 550 is too often a policy block to condemn the address).
    """
    if 200 <= code < 300:
        return Verdict(Outcome.SENT)
    status = enhanced_status(message)
    if 400 <= code < 500:
        return Verdict(Outcome.DEFERRED)
    if code == 552 and stage == "rcpt":
        return Verdict(Outcome.DEFERRED)
    if status is not None and status.startswith("5."):
        subject = status.split(".")[1]
        if subject == "1" or status == "5.2.1":
            return Verdict(Outcome.FAILED, FailureKind.RECIPIENT)
        if subject == "7":
            return Verdict(Outcome.FAILED, FailureKind.POLICY)
        if status in ("5.3.4", "5.2.3"):
            return Verdict(Outcome.FAILED, FailureKind.MESSAGE)
        if status == "5.2.2":
            return Verdict(Outcome.DEFERRED)  # mailbox full: persistent-transient (RFC 3463 3.3)
    if 500 <= code < 600:
        return Verdict(Outcome.FAILED, FailureKind.OTHER)
    # Anything outside 2xx-5xx breaks the protocol; try again later.
    return Verdict(Outcome.DEFERRED)


def retry_delay(attempts: int, schedule: list[int]) -> int:
    """Seconds to wait after the ``attempts``-th failed attempt (1-based); the last repeats."""
    if not schedule:
        return 300
    return schedule[min(max(attempts, 1), len(schedule)) - 1]
