"""The one place that decides what an SMTP reply or a DSN status means.

Over 400 lines on purpose: the reasons, both rule tables and the order of evidence that
weighs them are one decision, and the tables need :class:`Reason` defined here (a
``status_rules`` module would have to move ``Reason``, imported by smtp and engine).

Used by the live SMTP path (:func:`classify_reply`, through :mod:`mailer.smtp.transport`) and
by the bounce path (:func:`classify_dsn`, through :mod:`mailer.bounces`). A verdict says:

* **outcome** — what the reply is at the protocol level: ``sent`` (2xx), ``deferred``
  (transient, RFC 5321 4.2.1 4yz, or a persistent-transient condition such as a full
  mailbox), ``failed`` (5yz, permanent *for this transaction*);
* **fault** — who must change for delivery to work: the ``recipient`` (the address), the
  ``sender`` (us: our envelope sender, our IP, our authentication, our reputation), the
  ``message`` (size, content), the ``remote`` system, or the ``network``;
* **reason** — one value of :class:`Reason`;
* **hard** — true only when the recipient's address itself is dead (derived from the
  reason, and only for a permanent failure).

What the caller does with it (the engine, the bounce processor) is decided by fault:
recipient-hard → failed and suppressed; recipient-soft → deferred / scored; sender →
never failed, never suppressed, never scored (the release pauses); message → failed for
that message only.

Order of evidence: the stage (a refusal of ``MAIL FROM`` is about the sender whatever
its code says, RFC 5321 3.3), then **documented text rules** (below), then the RFC 3463
enhanced code, then the basic reply code. Text wins over the code where they disagree
because big providers misuse codes: ``550 5.1.1 ... has sent to too many recipients this
hour`` is a rate limit, Gmail's ``550-5.2.1 ... receiving mail at a rate that prevents
additional messages`` too (also split over lines that repeat the codes or start with a
bare ``5.2.1``: reply codes inside a text are skipped by the text rules), and
``Status: 5.1.1`` over ``552 5.2.2 Over quota`` is a full mailbox. X.1.7 and X.1.8 are *sender*
address problems (RFC 3463 3.2), never the recipient's. Weak wording (a bare "blocked",
"policy", "expired", "timed out") does not outrank a specific code. Hard means the
address is dead: ``user_unknown`` and ``domain_unknown`` only; a disabled or suspended
mailbox may come back and is scored.

Text rules, with what each MTA really writes (the tests in ``tests/test_status.py``
assert every row):

=======================  ==========================================================  ==================  =====
MTA / provider           reply or diagnostic                                         reason              hard
=======================  ==========================================================  ==================  =====
Postfix                  553 5.1.8 <bounces+...>: Sender address rejected:           sender_rejected     no
                         Domain not found (at MAIL or in a DSN)
Sendmail                 553 5.1.8 ... Domain of sender address x does not exist     sender_rejected     no
Postfix                  501 5.1.8 Sender address rejected                           sender_rejected     no
Exchange                 550 5.1.0 <bounce@...> sender rejected                      sender_rejected     no
Exchange Online          550 5.7.57 ... Unauthenticated senders not allowed          sender_rejected     no
various                  554 Invalid IP for sending / 571 No PTR record              reputation          no
provider (misused)       550 5.1.1 <x> - 203.0.113.9 has sent to too many            rate_limited        no
                         recipients this hour
Gmail (misused)          550-5.2.1 The user you are trying to contact is receiving   rate_limited        no
                         mail at a rate that prevents additional messages
DSN (misused)            Status: 5.1.1, Diagnostic-Code: 552 5.2.2 Over quota         mailbox_full        no
Exchange 2003            The recipient name is not recognized                        user_unknown        yes
Domino / Notes           ... not listed in Domino Directory                          user_unknown        yes
Exchange Online          550 5.4.1 Recipient address rejected: Access denied         user_unknown        yes
qmail                    Sorry, I couldn't find a mail exchanger or IP address.      domain_unknown      yes
                         (#5.4.4)
qmail                    Illegal host/domain name found                              domain_unknown      yes
Postfix                  Host or domain name not found. Name service error for       domain_unknown      yes
                         name=x type=A: Host not found
Postfix                  Name service error for name=x type=MX: Malformed or         dns_failure         no
                         unexpected name server reply / Host not found, try again
Gmail                    550-5.1.1 The email account that you tried to reach does    user_unknown        yes
                         not exist
Gmail                    550-5.2.1 The email account that you tried to reach is      mailbox_disabled    no
                         disabled
Yahoo                    554 delivery error: dd This user doesn't have a yahoo.com   user_unknown        yes
                         account
Outlook.com              550 5.5.0 Requested action not taken: mailbox unavailable   user_unknown        yes
KDDI / au, docomo        As their mailbox is full / exceeded storage allocation      mailbox_full        no
Oracle Messaging Server  550 5.1.1 unknown or illegal alias                          user_unknown        yes
Apache James             550 - Requested action not taken: no such user here         user_unknown        yes
Exim                     retry timeout exceeded                                      expired             no
=======================  ==========================================================  ==================  =====
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from mailer.domain.states import Outcome


class Stage(StrEnum):
    """The command an SMTP reply answered, or ``dsn`` for a delivery status notification."""

    CONNECT = "connect"  # greeting, EHLO/HELO, STARTTLS, AUTH
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # the reply to DATA or to the message data
    DSN = "dsn"


class Fault(StrEnum):
    """Who must change for delivery to work."""

    RECIPIENT = "recipient"
    SENDER = "sender"  # us: envelope sender, IP, authentication, reputation
    MESSAGE = "message"
    REMOTE = "remote"
    NETWORK = "network"


class Reason(StrEnum):
    """Why a delivery failed, as far as the reply or notice tells."""

    USER_UNKNOWN = "user_unknown"
    MAILBOX_DISABLED = "mailbox_disabled"
    DOMAIN_UNKNOWN = "domain_unknown"
    MAILBOX_FULL = "mailbox_full"
    RATE_LIMITED = "rate_limited"
    POLICY_BLOCKED = "policy_blocked"
    SPAM_BLOCKED = "spam_blocked"
    SENDER_REJECTED = "sender_rejected"
    SENDER_AUTH = "sender_auth"  # SPF / DKIM / DMARC
    REPUTATION = "reputation"  # our IP or domain is blocklisted / has poor reputation
    MESSAGE_TOO_BIG = "message_too_big"
    CONTENT_REJECTED = "content_rejected"
    DNS_FAILURE = "dns_failure"
    NETWORK = "network"
    SYSTEM_ERROR = "system_error"
    EXPIRED = "expired"
    RELAY_DENIED = "relay_denied"
    OTHER = "other"


#: The reasons that mean the address itself is dead. A disabled or suspended mailbox
#: (X.2.1, "account suspended") may come back, so it is soft: the soft-bounce score
#: suppresses it if it stays that way; a mailbox that moved away (X.1.6) is gone.
HARD_REASONS = frozenset({Reason.USER_UNKNOWN, Reason.DOMAIN_UNKNOWN})

#: Reason names older code stored (``deliveries.reason``) before this taxonomy.
LEGACY_REASONS = {"message_too_large": Reason.MESSAGE_TOO_BIG, "spam_rejected": Reason.SPAM_BLOCKED}


def reason_of(value: str | None) -> Reason | None:
    """The :class:`Reason` a stored reason string names (old names included), or None
    for an empty or unknown string; never raises, so display code can use it on any row."""
    if not value:
        return None
    if value in LEGACY_REASONS:
        return LEGACY_REASONS[value]
    try:
        return Reason(value)
    except ValueError:
        return None


#: Who is at fault for each reason.
FAULT_OF: dict[Reason, Fault] = {
    Reason.USER_UNKNOWN: Fault.RECIPIENT,
    Reason.MAILBOX_DISABLED: Fault.RECIPIENT,
    Reason.DOMAIN_UNKNOWN: Fault.RECIPIENT,
    Reason.MAILBOX_FULL: Fault.RECIPIENT,
    Reason.RATE_LIMITED: Fault.REMOTE,
    Reason.POLICY_BLOCKED: Fault.REMOTE,
    Reason.SPAM_BLOCKED: Fault.MESSAGE,
    Reason.SENDER_REJECTED: Fault.SENDER,
    Reason.SENDER_AUTH: Fault.SENDER,
    Reason.REPUTATION: Fault.SENDER,
    Reason.MESSAGE_TOO_BIG: Fault.MESSAGE,
    Reason.CONTENT_REJECTED: Fault.MESSAGE,
    Reason.DNS_FAILURE: Fault.NETWORK,
    Reason.NETWORK: Fault.NETWORK,
    Reason.SYSTEM_ERROR: Fault.REMOTE,
    Reason.EXPIRED: Fault.NETWORK,
    Reason.RELAY_DENIED: Fault.SENDER,
    Reason.OTHER: Fault.REMOTE,
}


class StatusCode(NamedTuple):
    """An RFC 3463 enhanced status code; a basic RFC 5321 reply gives ``(n, 0, 0)``."""

    klass: int
    subject: int
    detail: int

    @property
    def generic(self) -> bool:
        """True for ``X.0.0``, which tells the class and nothing else."""
        return self.subject == 0 and self.detail == 0

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


@dataclass(frozen=True)
class Verdict:
    """What one reply or one DSN recipient status means; see the module docstring."""

    outcome: Outcome
    fault: Fault | None = None
    reason: Reason | None = None
    code: StatusCode | None = None

    @property
    def hard(self) -> bool:
        """The address itself is dead: suppress it."""
        return (
            self.outcome is Outcome.FAILED
            and self.fault is Fault.RECIPIENT
            and self.reason in HARD_REASONS
            and (self.code is None or self.code.klass == 5)
        )


SENT = Verdict(Outcome.SENT)

# Lookarounds keep IP addresses and version numbers ("127.0.0.15", "8.17.1.9") out.
_ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
# A basic reply code at the start of a reply ("550 ", "452-", "#550").
_BASIC_RE = re.compile(r"(?:^|[\s;:'#(\[])([245])\d\d(?=[\s\-:)\]]|$)")


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


def enhanced_status(message: str) -> str | None:
    """The RFC 3463 enhanced status code near the start of a reply text, if any."""
    m = _ENHANCED_RE.search(message[:40])
    return m.group(0) if m else None


# (subject, detail) → reason, from the RFC 3463 section 3 registry.
_DETAIL_REASONS: dict[tuple[int, int], Reason] = {
    (1, 1): Reason.USER_UNKNOWN,  # X.1.1 Bad destination mailbox address
    (1, 2): Reason.DOMAIN_UNKNOWN,  # X.1.2 Bad destination system address
    (1, 3): Reason.USER_UNKNOWN,  # X.1.3 Bad destination mailbox address syntax
    (1, 4): Reason.USER_UNKNOWN,  # X.1.4 Destination mailbox address ambiguous
    (1, 6): Reason.USER_UNKNOWN,  # X.1.6 Destination mailbox has moved, no forwarding address
    (1, 7): Reason.SENDER_REJECTED,  # X.1.7 Bad sender's mailbox address syntax
    (1, 8): Reason.SENDER_REJECTED,  # X.1.8 Bad sender's system address
    # X.1.10 is "null MX" (RFC 7505), but Microsoft uses it for RecipientNotFound.
    (1, 10): Reason.USER_UNKNOWN,
    (2, 1): Reason.MAILBOX_DISABLED,  # X.2.1 Mailbox disabled, not accepting messages
    (2, 2): Reason.MAILBOX_FULL,  # X.2.2 Mailbox full
    (2, 3): Reason.MESSAGE_TOO_BIG,  # X.2.3 Message length exceeds administrative limit
    (3, 4): Reason.MESSAGE_TOO_BIG,  # X.3.4 Message too big for system
    (4, 1): Reason.NETWORK,  # X.4.1 No answer from host
    (4, 2): Reason.NETWORK,  # X.4.2 Bad connection
    (4, 3): Reason.DNS_FAILURE,  # X.4.3 Directory server failure
    (4, 4): Reason.NETWORK,  # X.4.4 Unable to route (the text tells a missing domain)
    (4, 5): Reason.SYSTEM_ERROR,  # X.4.5 Mail system congestion
    (4, 6): Reason.NETWORK,  # X.4.6 Routing loop detected
    (4, 7): Reason.EXPIRED,  # X.4.7 Delivery time expired
    (5, 3): Reason.RATE_LIMITED,  # X.5.3 Too many recipients
    (6, 0): Reason.CONTENT_REJECTED,  # X.6.x Message content or media status
    (7, 1): Reason.POLICY_BLOCKED,  # X.7.1 Delivery not authorized, message refused
    (7, 23): Reason.SENDER_AUTH,  # X.7.23 SPF validation failed (RFC 7372)
    (7, 24): Reason.SENDER_AUTH,  # X.7.24 SPF validation error
    (7, 25): Reason.REPUTATION,  # X.7.25 Reverse DNS validation failed
    (7, 26): Reason.SENDER_AUTH,  # X.7.26 Multiple authentication checks failed
    (7, 27): Reason.SENDER_REJECTED,  # X.7.27 Sender address has null MX
    (7, 20): Reason.SENDER_AUTH,  # X.7.20 No passing DKIM signature found
    (7, 21): Reason.SENDER_AUTH,  # X.7.21 No acceptable DKIM signature found
    (7, 22): Reason.SENDER_AUTH,  # X.7.22 No valid author-matched DKIM signature
    (7, 28): Reason.RATE_LIMITED,  # X.7.28 Mail flood detected
}

# Documented text rules, most specific first. Each names what servers write; where the
# text and the code disagree the text wins (see the module docstring). The soft, specific
# reasons come before the hard ones, so that a text naming both ("mailbox full ... user
# unknown", "blocked ... no such user") keeps the address.
_TEXT_RULES: tuple[tuple[Reason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (
            # Our envelope sender refused: Postfix reject_unknown_sender_domain ("Sender
            # address rejected: Domain not found"), "Domain of sender address ... does not
            # exist" (Sendmail), Exchange "sender rejected", "Unauthenticated senders not
            # allowed" (Exchange Online connectors).
            Reason.SENDER_REJECTED,
            r"sender address rejected|domain of sender address|sender (?:address )?(?:is )?(?:rejected|refused"
            r"|denied|invalid|unknown|not allowed|blocked)|sender domain (?:must exist|not found|does not exist"
            r"|unknown)|unauthenticated senders? not allowed|sender verify failed|bad sender|invalid sender"
            r"|mail from (?:address )?(?:rejected|refused|invalid)|return path (?:rejected|invalid)",
        ),
        (
            Reason.SENDER_AUTH,
            r"\bDMARC\b|\bSPF\b|\bDKIM\b|authentication (?:failed|required)|not authenticated|unauthenticated"
            r"|fails? to pass authentication",
        ),
        (
            Reason.REPUTATION,
            r"blocklist|blacklist|denylist|block ?list|\bDNSBL\b|\bRBL\b|spamhaus|spamcop|barracuda|sorbs"
            r"|reputation|invalid ip for sending|\bno PTR\b|PTR record|reverse (?:DNS|lookup)|\brDNS\b"
            r"|poor sender|(?:your |sending )?ip (?:address )?(?:is |has been )?(?:blocked|banned|listed)"
            r"|client host .{0,80} blocked|\bbanned\b",
        ),
        (
            Reason.MAILBOX_FULL,
            r"over ?quota|quota exceeded|exceeded (?:the |their |his |her |its )?(?:storage|quota|mailbox)"
            r"|mailbox (?:is )?full|full mailbox|inbox is full|mailbox size limit|mailbox (?:has )?exceeded"
            r"|insufficient (?:system )?storage|out of storage|storage allocation|not enough (?:storage|space)"
            r"|mail ?box(?: is)? over|exceeds? (?:the )?(?:mailbox|storage) (?:size|quota|limit)",
        ),
        (
            Reason.RATE_LIMITED,
            r"rate limit|too many (?:messages|recipients|connections|mails|emails)|sent to too many"
            r"|rate that prevents|throttl|exceeded (?:the )?(?:rate|sending limit)|sending rate|too fast"
            r"|unusual rate|temporarily deferred due to|mail flood|too much mail|rate of incoming",
        ),
        (
            Reason.RELAY_DENIED,
            r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)|not permitted to relay"
            r"|unable to relay|we do not relay|no relaying|relay not permitted",
        ),
        (
            Reason.MESSAGE_TOO_BIG,
            r"size exceeds|exceeds (?:the )?(?:fixed )?maximum (?:message )?size"
            r"|message (?:is |was )?too (?:large|big)|too large for|message file too big"
            r"|longer than the maximum size|message length exceeds|mail failure - message too big"
            r"|message size (?:limit|exceeded)|exceeded maximum inbound message size",
        ),
        (Reason.SPAM_BLOCKED, r"\bspam|junk mail|unsolicited|\bUCE\b|\bUBE\b|bulk mail"),
        (Reason.CONTENT_REJECTED, r"\bvirus|malware|illegal attachment|content (?:rejected|refused)"),
        (
            # A DNS *server* fault is transient; it is not a missing domain. Postfix says
            # "Host not found, try again" (SERVFAIL) versus a bare "Host not found".
            Reason.DNS_FAILURE,
            r"malformed or unexpected name server reply|temporary failure in name resolution"
            r"|host not found, try again|dns (?:lookup )?(?:error|failure|timeout|timed out)|SERVFAIL"
            r"|name server (?:failure|timeout|timed out)",
        ),
        (
            Reason.DOMAIN_UNKNOWN,
            r"host or domain name not found|\bNXDOMAIN\b|domain (?:name )?(?:does ?n[o']t exist"
            r"|not found|unknown|must exist|is not reachable)|no such domain|host unknown|unknown host"
            r"|unrouteable domain|null mx|couldn't find the domain|domain .{0,60}does ?n[o']t (?:exist|accept mail)"
            r"|couldn't find (?:a mail exchanger|any host)|illegal host/domain name|name or service not known"
            r"|unknown domain|mail domain .{0,40} is unknown|no mx (?:record|host)",
        ),
        (
            # Suspended or disabled accounts may come back (unpaid, locked, inactive): soft.
            Reason.MAILBOX_DISABLED,
            r"(?:account|mailbox|user|service) (?:has been |is |was )?(?:temporarily )?(?:disabled|deactivated"
            r"|inactive|suspended|locked|frozen)|(?:is|has been) (?:disabled|suspended|deactivated)"
            r"|deactivated mailbox|suspend the service|not accepting (?:any )?(?:mail|messages)",
        ),
        (
            Reason.POLICY_BLOCKED,
            r"\bblock(?:ed|ing)?\b|\bpolic(?:y|ies)\b|not (?:permitted|authori[sz]ed)|prohibited",
        ),
        (
            Reason.USER_UNKNOWN,
            r"user unknown|unknown user|no such (?:user|recipient|mailbox|address|person|account)"
            r"|unknown (?:recipient|mailbox|address|local.?part|e-?mail address)|recipient (?:address )?(?:not found"
            r"|unknown|invalid|does not exist|is not local|rejected: access denied)"
            r"|invalid (?:recipient|mailbox|address)"
            r"|mailbox (?:unavailable|not found|does not exist|unknown|invalid|not present)"
            r"|address (?:couldn't|could not) be found|address not found|does ?n[o']t exist"
            r"|does ?n[o']t have an? .{0,60}account|not a valid (?:user|mailbox|recipient|address)"
            r"|no mailbox here|unrouteable address|user not found|recipi?e?n?t?notfound"
            r"|bad destination mailbox|recipient name is not recognized|not listed in (?:domino|the) directory"
            r"|not listed in public name & address book|no longer (?:active|in use|valid|accepts mail|available)"
            r"|has moved|moved permanently|account (?:has been |is |was )?(?:closed|deleted|removed|terminated)"
            r"|is not a known user|not our customer|no account by that name|non-?existent (?:user|address)"
            r"|address (?:is )?(?:invalid|rejected)|bad recipient|there is no one at this address"
            r"|user doesn't exist|invalid/unknown|illegal alias",
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
            r" to connect|server greeting|wasn't able to establish|could not connect",
        ),
    )
)


# Reply codes inside a text: the continuation lines of a multi-line reply, joined or not
# ("... at a rate that 550 5.2.1 prevents additional messages"), split a wording apart.
# A continuation line may also start with a bare enhanced code: aiosmtplib drops the
# basic code of each line ("... at a rate that\n5.2.1 prevents"), and so do folded
# Diagnostic-Code fields. The codes themselves are read from the whole text.
_INNER_CODE_RE = re.compile(
    r"(?<=\S)\s+(?:[245]\d\d[- ](?:[245]\.\d{1,3}\.\d{1,3}(?![\d.]*\d)\s+)?|[245]\.\d{1,3}\.\d{1,3}(?![\d.]*\d)\s+)"
)


def reason_from_text(text: str) -> Reason | None:
    """The first reason whose documented wording appears in ``text`` (reply codes
    inside it, as multi-line replies repeat them, are skipped)."""
    text = _INNER_CODE_RE.sub(" ", text)
    for reason, pattern in _TEXT_RULES:
        if pattern.search(text):
            return reason
    return None


def _reason_from_code(code: StatusCode | None) -> Reason | None:
    if code is None or code.generic:
        return None
    known = _DETAIL_REASONS.get((code.subject, code.detail))
    if known is not None:
        return known
    if code.subject == 6:
        return Reason.CONTENT_REJECTED
    if code.subject == 7:
        return Reason.POLICY_BLOCKED  # X.7.x Security or policy status (RFC 3463 3.8)
    if code.subject == 4:
        return Reason.NETWORK
    if code.subject == 3:
        return Reason.SYSTEM_ERROR
    return None


def _reason(code: StatusCode | None, text: str) -> Reason:
    by_text = reason_from_text(text)
    by_code = _reason_from_code(code)
    if by_text is not None:
        # Weak wording (a bare "blocked" or "policy", "expired", "timed out") does not
        # outrank a specific code: 5.1.1 "... blocked" is rarely about policy, and
        # "5.1.1 account expired" is a dead address. Every other documented wording
        # wins over the code (the misused codes of the module docstring).
        if by_text in _WEAK_TEXT and by_code is not None and by_code is not Reason.NETWORK:
            return by_code
        return by_text
    return by_code or Reason.OTHER


_WEAK_TEXT = frozenset({Reason.POLICY_BLOCKED, Reason.EXPIRED, Reason.NETWORK})


def _fault(reason: Reason, stage: Stage) -> Fault:
    if stage in (Stage.MAIL, Stage.CONNECT) and reason not in (
        Reason.RATE_LIMITED,
        Reason.NETWORK,
        Reason.DNS_FAILURE,
        Reason.SYSTEM_ERROR,
        Reason.MESSAGE_TOO_BIG,
    ):
        # RFC 5321 3.3: MAIL FROM carries only our reverse-path; a refusal there (or of
        # the session) is never about a recipient, whatever the code says.
        return Fault.SENDER
    return FAULT_OF[reason]


def classify_reply(code: int, message: str, *, stage: Stage | str) -> Verdict:
    """What the SMTP reply ``code message`` to ``stage`` means for one delivery.

    * 2xx: sent.
    * 4xx: deferred (RFC 5321 4.2.1: transient negative completion).
    * 552 at RCPT: deferred (RFC 5321 4.5.3.1.10: "too many recipients" must be treated
      as temporary; old servers also send 552 for a full mailbox).
    * 5xx: failed, with the fault and reason the stage, text and codes give. A full
      mailbox (X.2.2) and a rate limit are persistent-transient: deferred.
    """
    stage = Stage(stage)
    if 200 <= code < 300:
        return SENT
    status = parse_code(message)
    if status is None or status.klass != code // 100:
        status = StatusCode(code // 100, 0, 0) if 400 <= code < 600 else None
    reason = _reason(status, message)
    fault = _fault(reason, stage)
    if 400 <= code < 500:
        return Verdict(Outcome.DEFERRED, fault, reason, status)
    if 500 <= code < 600:
        if stage is Stage.RCPT and code == 552:
            return Verdict(Outcome.DEFERRED, fault, reason, status)
        if fault is Fault.RECIPIENT and reason is Reason.MAILBOX_FULL:
            return Verdict(Outcome.DEFERRED, fault, reason, status)
        if reason is Reason.RATE_LIMITED:
            return Verdict(Outcome.DEFERRED, fault, reason, status)
        return Verdict(Outcome.FAILED, fault, reason, status)
    # Anything outside 2xx-5xx breaks the protocol; try again later.
    return Verdict(Outcome.DEFERRED, Fault.REMOTE, Reason.SYSTEM_ERROR, None)


def effective_code(status: str | None, diagnostic: str | None) -> StatusCode | None:
    """The most specific code available: the DSN ``Status`` first (RFC 3463), then the
    code quoted in the diagnostic when the status is missing or generic (``5.0.0``)."""
    from_status = parse_code(status)
    if from_status is not None and not from_status.generic:
        return from_status
    from_text = parse_code(diagnostic)
    if from_text is not None and not from_text.generic:
        return from_text
    return from_status or from_text


def classify_dsn(status: str | None, diagnostic: str | None, *, action: str | None = None) -> Verdict:
    """What one recipient block of a DSN (or a legacy notice) means.

    ``status`` is the DSN ``Status`` field (may be missing or generic), ``diagnostic`` the
    ``Diagnostic-Code`` or the human-readable text about this recipient, ``action`` the
    DSN ``Action``. ``delayed`` means the reporting MTA is still trying (RFC 3464 2.3.3):
    deferred whatever the codes say. Never raises; no evidence gives a soft ``other``.
    """
    code = effective_code(status, diagnostic)
    text = diagnostic or ""
    # A DSN may carry a specific Status and a diagnostic quoting a different specific
    # code (Status: 5.1.1, "552 5.2.2 Over quota"); the text rules read the diagnostic.
    reason = _reason(code, text)
    fault = _fault(reason, Stage.DSN)
    delayed = action is not None and action.strip().lower().startswith("delayed")
    if delayed or code is None or code.klass != 5:
        outcome = Outcome.DEFERRED if delayed or (code is not None and code.klass == 4) else Outcome.FAILED
    else:
        outcome = Outcome.FAILED
    return Verdict(outcome, fault, reason, code)
