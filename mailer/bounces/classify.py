"""Decide whether a failed recipient is a hard or a soft bounce, and why.

One place decides. The evidence, in order:

1. ``action``: ``delayed`` means the reporting MTA is still trying (RFC 3464 §2.3.3), so
   it is always soft whatever the codes say.
2. The enhanced status code (RFC 3463 ``class.subject.detail``). A specific code wins over
   the text. A generic code (``5.0.0``, ``4.0.0``, as Exim and OpenSMTPD always write)
   says nothing, so a specific code quoted in the diagnostic is used instead.
3. The diagnostic text, for the many servers that put the truth only there.

Hard means the address itself is dead: user unknown, domain unknown, mailbox disabled or
moved. Everything else is soft. A 5xx reply is *not* by itself hard: RFC 5321 §4.2.1
makes 5yz "permanent" for that transaction only — a full mailbox, a size limit or a spam
filter refuses with 5yz too, and the address stays good.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple


class BounceClass(StrEnum):
    """Whether the address should be suppressed (hard) or merely retried later (soft)."""

    HARD = "hard"
    SOFT = "soft"


class Reason(StrEnum):
    """Why a delivery failed, as far as the notice tells."""

    USER_UNKNOWN = "user_unknown"
    MAILBOX_FULL = "mailbox_full"
    DOMAIN_UNKNOWN = "domain_unknown"
    MESSAGE_TOO_LARGE = "message_too_large"
    POLICY_BLOCKED = "policy_blocked"
    SPAM_REJECTED = "spam_rejected"
    EXPIRED = "expired"
    NETWORK = "network"
    MAILBOX_DISABLED = "mailbox_disabled"
    OTHER = "other"


# The reasons that mean the address itself is dead.
HARD_REASONS = frozenset({Reason.USER_UNKNOWN, Reason.DOMAIN_UNKNOWN, Reason.MAILBOX_DISABLED})


class StatusCode(NamedTuple):
    """An RFC 3463 enhanced status code; a basic RFC 5321 reply gives ``(n, 0, 0)``."""

    klass: int
    subject: int
    detail: int

    @property
    def generic(self) -> bool:
        """True for ``X.0.0``, which tells the class and nothing else."""
        return self.subject == 0 and self.detail == 0


# Lookarounds keep IP addresses and version numbers ("127.0.0.15", "8.17.1.9") out.
_ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
# A basic reply code at the start of a reply ("550 ", "452-", "#550"), for when no
# enhanced code is given.
_BASIC_RE = re.compile(r"(?:^|[\s;:'#(\[])([245])\d\d(?=[\s\-:)\]]|$)")

# (class-independent subject, detail) → reason, from the RFC 3463 §3 registry.
_DETAIL_REASONS: dict[tuple[int, int], Reason] = {
    (1, 1): Reason.USER_UNKNOWN,  # X.1.1 Bad destination mailbox address
    (1, 2): Reason.DOMAIN_UNKNOWN,  # X.1.2 Bad destination system address
    # X.1.3 Bad destination mailbox address syntax: the address can never work.
    (1, 3): Reason.USER_UNKNOWN,
    (1, 6): Reason.MAILBOX_DISABLED,  # X.1.6 Destination mailbox has moved
    # X.1.10 is "null MX" (RFC 7505), but Microsoft uses it for RecipientNotFound;
    # both mean the address is dead.
    (1, 10): Reason.USER_UNKNOWN,
    (2, 1): Reason.MAILBOX_DISABLED,  # X.2.1 Mailbox disabled, not accepting messages
    (2, 2): Reason.MAILBOX_FULL,  # X.2.2 Mailbox full
    (2, 3): Reason.MESSAGE_TOO_LARGE,  # X.2.3 Message length exceeds administrative limit
    (3, 4): Reason.MESSAGE_TOO_LARGE,  # X.3.4 Message too big for system
    (4, 7): Reason.EXPIRED,  # X.4.7 Delivery time expired
}

# Ordered: the soft, specific reasons come before the hard ones, so that a text which
# mentions both ("blocked ... user unknown") errs on the side of keeping the address.
_TEXT_RULES: tuple[tuple[Reason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (
            Reason.MAILBOX_FULL,
            r"over ?quota|quota exceeded|exceeded (?:the |their |his |her )?(?:storage|quota)"
            r"|mailbox (?:is )?full|full mailbox|inbox is full|mailbox size limit"
            r"|insufficient (?:system )?storage|out of storage|storage allocation",
        ),
        (
            Reason.MESSAGE_TOO_LARGE,
            r"size exceeds|exceeds (?:the )?(?:fixed )?maximum (?:message )?size"
            r"|message (?:is |was )?too (?:large|big)|too large for|message file too big"
            r"|longer than the maximum size|message length exceeds|mail failure - message too big",
        ),
        (Reason.SPAM_REJECTED, r"\bspam|junk mail|unsolicited|\bUCE\b"),
        (
            Reason.POLICY_BLOCKED,
            r"\bblock(?:ed|list|ing)?\b|blacklist|denylist|\bpolic(?:y|ies)\b|access denied"
            r"|not (?:permitted|authori[sz]ed)|reputation|\bDMARC\b|\bSPF\b|\bDKIM\b"
            r"|relay(?:ing)? (?:denied|not permitted)|prohibited|banned",
        ),
        (
            Reason.DOMAIN_UNKNOWN,
            r"host or domain name not found|\bNXDOMAIN\b|domain (?:name )?(?:does not exist"
            r"|not found|unknown)|no such domain|host unknown|unknown host|unrouteable domain"
            r"|name service error|null mx|couldn't find the domain|domain .{0,60}does ?n[o']t"
            r" (?:exist|accept mail)",
        ),
        (
            Reason.MAILBOX_DISABLED,
            r"(?:account|mailbox|user) (?:has been |is )?(?:disabled|deactivated|inactive"
            r"|suspended|closed)|(?:is|has been) disabled|no longer (?:active|in use|valid)"
            r"|has moved|moved permanently",
        ),
        (
            Reason.USER_UNKNOWN,
            r"user unknown|unknown user|no such (?:user|recipient|mailbox|address|person)"
            r"|unknown (?:recipient|mailbox|address)|recipient (?:address )?(?:not found"
            r"|unknown|invalid|does not exist)|invalid (?:recipient|mailbox)"
            r"|mailbox (?:unavailable|not found|does not exist|unknown)"
            r"|address (?:couldn't|could not) be found|address not found|does ?n[o']t exist"
            r"|does ?n[o']t have an? .{0,60}account|not a valid (?:user|mailbox|recipient)"
            r"|no mailbox here|unrouteable address|user not found|recipi?e?n?t?notfound"
            r"|bad destination mailbox",
        ),
        (
            Reason.EXPIRED,
            r"retry timeout exceeded|retry time not reached|expired|too long in (?:the )?queue"
            r"|could not be delivered (?:within|for)|giving up|gave up",
        ),
        (
            Reason.NETWORK,
            r"connection refused|timed? ?out|lost connection|connection (?:reset|closed"
            r"|dropped|died)|network is unreachable|no route to host|(?:unable|could ?n[o']t)"
            r" to connect|temporary failure in name resolution|server greeting",
        ),
    )
)


def classify(status: str | None, diagnostic: str | None, *, action: str | None = None) -> tuple[BounceClass, Reason]:
    """Classify one recipient's failure.

    ``status`` is the DSN ``Status`` field (may be missing or generic), ``diagnostic``
    the ``Diagnostic-Code`` or the human-readable text about this recipient, ``action``
    the DSN ``Action``. Never raises; unknown evidence gives ``(SOFT, OTHER)``.
    """
    code = effective_code(status, diagnostic)
    reason = _reason(code, diagnostic or "")
    return _bounce_class(code, reason, action), reason


def parse_code(text: str | None) -> StatusCode | None:
    """The first enhanced status code in ``text``, else its basic reply code, else None."""
    if not text:
        return None
    enhanced = _ENHANCED_RE.search(text)
    if enhanced:
        return StatusCode(int(enhanced[1]), int(enhanced[2]), int(enhanced[3]))
    basic = _BASIC_RE.search(text)
    if basic:
        return StatusCode(int(basic[1]), 0, 0)
    return None


def effective_code(status: str | None, diagnostic: str | None) -> StatusCode | None:
    """The most specific code available: the status field first (RFC 3463), then the
    code quoted in the diagnostic when the status is missing or generic (``5.0.0``)."""
    from_status = parse_code(status)
    if from_status is not None and not from_status.generic:
        return from_status
    from_text = parse_code(diagnostic)
    if from_text is not None and not from_text.generic:
        return from_text
    return from_status or from_text


def reason_from_text(text: str) -> Reason | None:
    """The first reason whose wording appears in ``text``, in ``_TEXT_RULES`` order."""
    for reason, pattern in _TEXT_RULES:
        if pattern.search(text):
            return reason
    return None


def _reason(code: StatusCode | None, text: str) -> Reason:
    by_text = reason_from_text(text)
    by_code = _reason_from_code(code)
    if by_code is None:
        return by_text or Reason.OTHER
    if by_code is Reason.POLICY_BLOCKED and by_text is Reason.SPAM_REJECTED:
        return Reason.SPAM_REJECTED
    # X.4.4 "Unable to route" (RFC 3463 §3.5) covers both a missing domain (Postfix says
    # "Host or domain name not found", 5.4.4) and broken routing; only the text tells.
    if code is not None and (code.subject, code.detail) == (4, 4):
        return Reason.DOMAIN_UNKNOWN if by_text is Reason.DOMAIN_UNKNOWN else Reason.NETWORK
    return by_code


def _reason_from_code(code: StatusCode | None) -> Reason | None:
    if code is None or code.generic:
        return None
    known = _DETAIL_REASONS.get((code.subject, code.detail))
    if known is not None:
        return known
    if code.subject == 7:
        # X.7.x Security or policy status (RFC 3463 §3.8), whatever the text says. Some
        # servers answer "550 5.7.1 ... user unknown" to resist address harvesting, but
        # others refuse live users for policy with the same code. Suppressing a live
        # journalist for good costs more than one more soft bounce, which the bounce
        # score counts anyway: a 5.7.x is never hard.
        return Reason.POLICY_BLOCKED
    if code.subject == 4:
        # X.4.x Network and routing status (RFC 3463 §3.5).
        return Reason.NETWORK
    return None


def _bounce_class(code: StatusCode | None, reason: Reason, action: str | None) -> BounceClass:
    if action is not None and action.strip().lower().startswith("delayed"):
        # RFC 3464 §2.3.3: the MTA is still trying; nothing is known to be dead yet.
        return BounceClass.SOFT
    if reason not in HARD_REASONS:
        return BounceClass.SOFT
    if code is not None and code.klass != 5:
        # RFC 3463 §3.1 / RFC 5321 §4.2.1: 4.X.X is a persistent transient failure.
        return BounceClass.SOFT
    return BounceClass.HARD
