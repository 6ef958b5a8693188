"""The bounce policy: what one notice, matched by a signed token to a delivery, does to
it. Pure: :func:`decide` returns a :class:`Decision`; :mod:`mailer.bounces.filing`
carries it out. What happens depends on the verdict's *fault*
(:mod:`mailer.domain.status`):

* recipient, hard (user or domain unknown) → delivery ``bounced``; address suppressed
  everywhere (``hard_bounce``) when ``suppress_hard``.
* sender (our envelope sender, IP, authentication, reputation: "Domain of sender
  address ... does not exist") → the recipient did not get it and it is not their
  fault: the delivery goes back to the queue (``requeued`` event "reason: detail", as
  the engine does when it hears the refusal itself; never bounced or failed), the
  recipient untouched (no score, no suppression), and the release paused at once if it
  is still sending, with a reason a person can act on; after ``resume`` the row gets one
  copy. A release that already finished is left as it is (the row shows as ``queued``;
  ``mailer releases retry ID --status queued`` sends such rows once the setup is fixed).
* message (size, spam, content) → delivery ``bounced``; nothing else.
* recipient soft, remote, network → delivery ``bounced``; the contact's soft score counts
  it (at most once a day; stale after ``soft_reset_days``), except for refusals that say
  nothing about the address (policy, rate limits). At ``soft_threshold`` the warn/disable
  flow starts: ``soft_warnings`` warnings (``bounce_warning`` events for staff), one per
  ``soft_warning_days`` while the address keeps bouncing, then ``soft_bounce``
  suppression. A stale score starts again with no warnings.
* delay → event only. ARF ``abuse``/``fraud``/``virus`` → ``complained`` event and
  suppression everywhere; ``auth-failure``/``not-spam``/``other`` → ``feedback`` event,
  nobody suppressed.
* auto-replies and anything that is not a notice → nothing, ever.

Every notice becomes one ``DeliveryEvent`` keyed by :func:`dedupe_key` over (delivery,
kind, status, the notice's own Message-ID or bytes), so the same notice processed twice
is recorded once and acted on once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mailer.bounces.report import BounceClass, Kind, RecipientStatus
from mailer.domain.states import SuppressionReason
from mailer.domain.status import Fault, Reason, parse_code


class BounceOutcome(StrEnum):
    """What processing one returned message came to."""

    BOUNCED = "bounced"
    DELAYED = "delayed"
    COMPLAINT = "complaint"
    FEEDBACK = "feedback"  # an ARF report that is not a complaint: recorded only
    SENDER_REFUSED = "sender_refused"  # a notice about our sender: recorded, release paused
    REVIEW = "review"  # matched without a signed token: kept for staff review only
    KEPT = "kept"  # mail to postmaster@/abuse@/the feedback address kept for staff
    UNSUBSCRIBED = "unsubscribed"
    IGNORED = "ignored"  # auto-reply, human mail, a notice reporting no failure
    UNMATCHED = "unmatched"  # a notice for no known delivery, or a forged token
    DUPLICATE = "duplicate"  # already recorded earlier
    PROOF = "proof"  # a returned proof: recorded on the proof, suppresses no one
    REPLY = "reply"  # a reply or auto-reply to a delivery, recorded by mailer.inbound


#: Soft-bounce reasons that say nothing about the address: the receiver refused this
#: message (content, size), throttled us, or applies a policy (RFC 3463 §3.8: X.7.x is
#: security or policy status). Counting these would suppress live journalists because
#: our sending IP got listed somewhere. Sender-side reasons never count either.
UNSCORED_REASONS = frozenset(
    {
        Reason.POLICY_BLOCKED,
        Reason.SPAM_BLOCKED,
        Reason.MESSAGE_TOO_BIG,
        Reason.CONTENT_REJECTED,
        Reason.RATE_LIMITED,
        Reason.RELAY_DENIED,
    }
)

#: Event details and review summaries are cut to this many characters.
MAX_DETAIL = 1000

# When one message touches several deliveries, the first of these it came to names it.
_PRIORITY = (
    BounceOutcome.COMPLAINT,
    BounceOutcome.SENDER_REFUSED,
    BounceOutcome.BOUNCED,
    BounceOutcome.FEEDBACK,
    BounceOutcome.DELAYED,
    BounceOutcome.UNSUBSCRIBED,
    BounceOutcome.REVIEW,
)
_REPLY_CODE_RE = re.compile(r"(?<![\d.])([245][0-5]\d)(?![\d.])")


@dataclass(frozen=True)
class Decision:
    """What one notice does to the delivery it is about, once its event is recorded."""

    event: str  # the kind of the DeliveryEvent to record
    outcome: BounceOutcome
    mark_bounced: bool = False  # the delivery becomes bounced, with the recipient's reason
    requeue: bool = False  # the delivery goes back to the queue (a refusal of our sender)
    pause_release: bool = False  # the release stops if it is still sending
    suppress: SuppressionReason | None = None  # the address is suppressed everywhere
    score: bool = False  # the contact's soft-bounce score counts it


def decide(kind: Kind, recipient: RecipientStatus | None, *, suppress_hard: bool) -> Decision | None:
    """The policy for one notice of ``kind`` about one delivery, ``recipient`` being what
    it says about that delivery's address (None when an ARF report redacts it). None
    when the notice asks for nothing (not a failure, not a delay, not feedback)."""
    if kind is Kind.COMPLAINT:
        return Decision("complained", BounceOutcome.COMPLAINT, suppress=SuppressionReason.COMPLAINT)
    if kind is Kind.FEEDBACK:
        return Decision("feedback", BounceOutcome.FEEDBACK)
    if recipient is None:
        return None
    if recipient.action == "delayed":
        return Decision("delayed", BounceOutcome.DELAYED)
    if recipient.action != "failed":
        return None
    if recipient.fault is Fault.SENDER:
        # About us, not the address: back to the queue (as the engine does when it hears
        # the refusal itself), never bounced, scored or suppressed; stop the release.
        return Decision("requeued", BounceOutcome.SENDER_REFUSED, requeue=True, pause_release=True)
    if recipient.bounce_class is BounceClass.HARD:
        suppress = SuppressionReason.HARD_BOUNCE if suppress_hard else None
        return Decision("bounced", BounceOutcome.BOUNCED, mark_bounced=True, suppress=suppress)
    says_nothing_about_address = (
        recipient.fault is Fault.MESSAGE or recipient.reason in UNSCORED_REASONS or _is_policy_status(recipient.status)
    )
    return Decision("bounced", BounceOutcome.BOUNCED, mark_bounced=True, score=not says_nothing_about_address)


def overall(outcomes: Iterable[BounceOutcome]) -> BounceOutcome:
    """The outcome of a message that came to ``outcomes`` for its deliveries: the
    weightiest thing recorded, else duplicate, else ignored."""
    seen = set(outcomes)
    recorded = [o for o in _PRIORITY if o in seen]
    if recorded:
        return recorded[0]
    return BounceOutcome.DUPLICATE if BounceOutcome.DUPLICATE in seen else BounceOutcome.IGNORED


def dedupe_key(delivery_id: int, kind: str, status: str | None, fingerprint: str) -> str:
    """The key that makes recording the same thing twice a no-op."""
    text = "\x1f".join((str(delivery_id), kind, status or "", fingerprint))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def reply_code(status: str | None, diagnostic: str | None) -> int | None:
    """The basic SMTP reply code quoted in the diagnostic (``smtp; 550 5.1.1 ...``),
    else the class of the status (``5.1.1`` → 500), else None."""
    match = _REPLY_CODE_RE.search(diagnostic or "")
    if match:
        return int(match[1])
    code = parse_code(status)
    return code.klass * 100 if code is not None else None


def _is_policy_status(status: str | None) -> bool:
    code = parse_code(status)
    return code is not None and code.subject == 7
