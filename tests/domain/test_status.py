"""The one status classifier (mailer.domain.status): the documented text rules, the stage, the
codes, and what a verdict says about the fault and hard/soft."""

from __future__ import annotations

import pytest

from mailer.domain.states import Outcome
from mailer.domain.status import Fault, Reason, Stage, classify_dsn, classify_reply, parse_code, reason_of

# (reply code, text, reason, fault, hard) at RCPT: one row per line of the module's table.
REPLIES = [
    (
        553,
        "5.1.8 <bounces+x@b.example.com>: Sender address rejected: Domain not found",
        Reason.SENDER_REJECTED,
        Fault.SENDER,
        False,
    ),
    (501, "5.1.8 Sender address rejected", Reason.SENDER_REJECTED, Fault.SENDER, False),
    (550, "5.1.0 <bounce@b.example.com> sender rejected", Reason.SENDER_REJECTED, Fault.SENDER, False),
    (
        550,
        "5.7.57 SMTP; Client was not authenticated: Unauthenticated senders not allowed",
        Reason.SENDER_REJECTED,
        Fault.SENDER,
        False,
    ),
    (554, "Invalid IP for sending", Reason.REPUTATION, Fault.SENDER, False),
    (571, "No PTR record", Reason.REPUTATION, Fault.SENDER, False),
    (
        550,
        "5.1.1 <x@example.org> - 203.0.113.9 has sent to too many recipients this hour",
        Reason.RATE_LIMITED,
        Fault.REMOTE,
        False,
    ),
    (
        550,
        "5.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional "
        "messages from being delivered.",
        Reason.RATE_LIMITED,
        Fault.REMOTE,
        False,
    ),
    (550, "The recipient name is not recognized", Reason.USER_UNKNOWN, Fault.RECIPIENT, True),
    (550, "jo@example.org is not listed in Domino Directory", Reason.USER_UNKNOWN, Fault.RECIPIENT, True),
    (
        550,
        "5.4.1 Recipient address rejected: Access denied. [AM0PR01.eurprd01.example.com]",
        Reason.USER_UNKNOWN,
        Fault.RECIPIENT,
        True,
    ),
    (
        550,
        "5.1.1 The email account that you tried to reach does not exist.",
        Reason.USER_UNKNOWN,
        Fault.RECIPIENT,
        True,
    ),
    (
        550,
        "5.2.1 The email account that you tried to reach is disabled.",
        Reason.MAILBOX_DISABLED,
        Fault.RECIPIENT,
        False,
    ),
    (
        554,
        "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.example) [0]",
        Reason.USER_UNKNOWN,
        Fault.RECIPIENT,
        True,
    ),
    (550, "5.5.0 Requested action not taken: mailbox unavailable", Reason.USER_UNKNOWN, Fault.RECIPIENT, True),
    (550, "5.1.1 unknown or illegal alias: jo@example.org", Reason.USER_UNKNOWN, Fault.RECIPIENT, True),
    (550, "- Requested action not taken: no such user here", Reason.USER_UNKNOWN, Fault.RECIPIENT, True),
    (550, "5.7.1 Message rejected as spam", Reason.SPAM_BLOCKED, Fault.MESSAGE, False),
    (
        554,
        "5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org",
        Reason.REPUTATION,
        Fault.SENDER,
        False,
    ),
    (
        550,
        "5.7.26 This message fails to pass authentication checks (SPF or DKIM)",
        Reason.SENDER_AUTH,
        Fault.SENDER,
        False,
    ),
    (554, "5.7.1 <x@example.org>: Relay access denied", Reason.RELAY_DENIED, Fault.SENDER, False),
    (552, "5.3.4 Message size exceeds fixed maximum message size", Reason.MESSAGE_TOO_BIG, Fault.MESSAGE, False),
    (550, "5.7.1 Delivery not authorized", Reason.POLICY_BLOCKED, Fault.REMOTE, False),
]


@pytest.mark.parametrize(("code", "text", "reason", "fault", "hard"), REPLIES, ids=[r[1][:40] for r in REPLIES])
def test_documented_reply_rules(code: int, text: str, reason: Reason, fault: Fault, hard: bool) -> None:
    """Each documented wording gives its reason, fault and hard/soft at RCPT, whatever the code says."""
    verdict = classify_reply(code, text, stage=Stage.RCPT)
    assert (verdict.reason, verdict.fault, verdict.hard) == (reason, fault, hard)


# (Status, diagnostic, reason, hard) in a DSN.
DSNS = [
    ("5.1.1", "smtp; 552 5.2.2 Over quota", Reason.MAILBOX_FULL, False),
    ("5.0.0", "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", Reason.DOMAIN_UNKNOWN, True),
    (None, "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", Reason.DOMAIN_UNKNOWN, True),
    (None, "Illegal host/domain name found", Reason.DOMAIN_UNKNOWN, True),
    (
        "5.4.4",
        "X-Postfix; Host or domain name not found. Name service error for name=x.example type=A: Host not found",
        Reason.DOMAIN_UNKNOWN,
        True,
    ),
    (
        "5.4.4",
        "X-Postfix; Name service error for name=x.example type=MX: Malformed or unexpected name server reply",
        Reason.DNS_FAILURE,
        False,
    ),
    (
        "4.4.3",
        "X-Postfix; Host or domain name not found. Name service error for name=x.example type=MX: "
        "Host not found, try again",
        Reason.DNS_FAILURE,
        False,
    ),
    (
        "5.1.8",
        "smtp; 553 5.1.8 <bounces+a@b.example.com>... Domain of sender address bounces+a@b.example.com does not exist",
        Reason.SENDER_REJECTED,
        False,
    ),
    ("5.1.6", "smtp; 550 5.1.6 recipient no longer on server", Reason.USER_UNKNOWN, True),
    (
        "5.1.1",
        "smtp; 550 5.1.1 <a@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        Reason.USER_UNKNOWN,
        True,
    ),
    ("5.1.1", "smtp; 550 5.1.1 account expired", Reason.USER_UNKNOWN, True),
    ("5.0.0", "smtp; 550 unknown user", Reason.USER_UNKNOWN, True),
    ("5.0.0", "Unrouteable address", Reason.USER_UNKNOWN, True),
    ("5.0.0", "retry timeout exceeded", Reason.EXPIRED, False),
    ("4.4.7", None, Reason.EXPIRED, False),
    ("5.2.2", None, Reason.MAILBOX_FULL, False),
    ("5.1.2", None, Reason.DOMAIN_UNKNOWN, True),
    ("5.1.10", None, Reason.USER_UNKNOWN, True),
    ("5.2.1", None, Reason.MAILBOX_DISABLED, False),
    ("5.3.4", None, Reason.MESSAGE_TOO_BIG, False),
    ("5.0.0", "smtp; 452 4.2.2 Mailbox full: retry timeout exceeded", Reason.MAILBOX_FULL, False),
    ("5.0.0", "something nobody has seen before", Reason.OTHER, False),
    (None, None, Reason.OTHER, False),
    (None, "host 192.0.2.5 [127.0.0.15] said: no such user", Reason.USER_UNKNOWN, True),
    (None, "Could not be delivered to: <a@ezweb.example.jp> As their mailbox is full.", Reason.MAILBOX_FULL, False),
    ("5.2.2", "smtp; 552 Requested mail action aborted: exceeded storage allocation", Reason.MAILBOX_FULL, False),
]


@pytest.mark.parametrize(("status", "diagnostic", "reason", "hard"), DSNS, ids=[f"{d[0]}-{d[1]}"[:50] for d in DSNS])
def test_documented_dsn_rules(status: str | None, diagnostic: str | None, reason: Reason, hard: bool) -> None:
    """A DSN recipient block gets the reason and hard/soft the text rules and codes give."""
    verdict = classify_dsn(status, diagnostic)
    assert (verdict.reason, verdict.hard) == (reason, hard)


@pytest.mark.parametrize("code", ["5.1.7", "5.1.8", "5.7.1", "5.1.1", "5.0.0"])
def test_refusal_at_mail_from_is_always_the_senders_fault(code: str) -> None:
    """RFC 5321 3.3: whatever the code, a refusal of MAIL FROM never blames a recipient."""
    verdict = classify_reply(550, f"{code} rejected", stage=Stage.MAIL)
    assert verdict.fault is Fault.SENDER
    assert not verdict.hard


def test_sender_fault_dsn_never_hard() -> None:
    """A DSN about our sender domain is failed, sender fault, never hard."""
    verdict = classify_dsn("5.1.8", "smtp; 553 5.1.8 Sender address rejected: Domain not found")
    assert (verdict.outcome, verdict.fault, verdict.hard) == (Outcome.FAILED, Fault.SENDER, False)


@pytest.mark.parametrize("status", ["5.1.1", "4.0.0", "5.0.0", None])
def test_delayed_is_never_hard(status: str | None) -> None:
    """RFC 3464 'delayed': still being retried, so deferred and never hard whatever the code says."""
    verdict = classify_dsn(status, "550 5.1.1 user unknown", action="delayed")
    assert verdict.outcome is Outcome.DEFERRED and not verdict.hard


def test_4xx_user_unknown_is_not_hard() -> None:
    """A transient code keeps an address that the text calls unknown (RFC 3463 4.X.X)."""
    assert not classify_reply(450, "4.1.1 user unknown", stage=Stage.RCPT).hard
    assert classify_reply(450, "4.1.1 user unknown", stage=Stage.RCPT).outcome is Outcome.DEFERRED


def test_rate_limit_and_full_mailbox_5xx_are_deferred() -> None:
    """A 5xx rate limit or full mailbox is persistent-transient: deferred, not failed."""
    assert classify_reply(550, "5.2.1 receiving mail at a rate that prevents", stage="rcpt").outcome is (
        Outcome.DEFERRED
    )
    assert classify_reply(552, "5.2.2 Mailbox full", stage="data").outcome is Outcome.DEFERRED


GMAIL_RATE_MULTILINE = [
    # the reply as sent, every line with its codes
    "550-5.2.1 The email account that you tried to reach is receiving mail at a rate that\n"
    "550 5.2.1 prevents additional messages from being delivered.",
    # as aiosmtplib hands it over: the basic code of each line dropped, the enhanced one kept
    "5.2.1 The email account that you tried to reach is receiving mail at a rate that\n"
    "5.2.1 prevents additional messages from being delivered.",
    # a continuation line that starts with a bare enhanced code, the first without any
    "The email account that you tried to reach is receiving mail at a rate that\n"
    "5.2.1 prevents additional messages from being delivered.",
    # unfolded into one line (a Diagnostic-Code field)
    "550-5.2.1 The email account that you tried to reach is receiving mail at a rate that "
    "5.2.1 prevents additional messages from being delivered.",
]


@pytest.mark.parametrize("text", GMAIL_RATE_MULTILINE, ids=["codes", "enhanced-only", "bare-continuation", "unfolded"])
def test_gmail_multiline_rate_limit_is_not_a_disabled_mailbox(text: str) -> None:
    """Gmail's 5.2.1 rate limit split over lines (codes repeated or bare) is a soft rate limit, never suppressed."""
    verdict = classify_reply(550, text, stage=Stage.RCPT)
    assert (verdict.outcome, verdict.reason, verdict.fault) == (Outcome.DEFERRED, Reason.RATE_LIMITED, Fault.REMOTE)
    assert not verdict.hard
    in_dsn = classify_dsn("5.2.1", f"smtp; {text}")
    assert (in_dsn.reason, in_dsn.fault, in_dsn.hard) == (Reason.RATE_LIMITED, Fault.REMOTE, False)


def test_bare_codes_on_continuation_lines_do_not_change_other_wordings() -> None:
    """Stripping a continuation line's bare code keeps a disabled Gmail account disabled, and IPs intact."""
    disabled = "5.2.1 The email account that you tried to reach is disabled. Learn more at\n5.2.1 https://example.com/x"
    assert classify_reply(550, disabled, stage=Stage.RCPT).reason is Reason.MAILBOX_DISABLED
    unknown = "5.1.1 The email account that you tried to reach does not exist. Please try\n5.1.1 double-checking"
    assert classify_reply(550, unknown, stage=Stage.RCPT).hard


def test_parse_code_skips_ip_addresses() -> None:
    """IP addresses and versions are not read as enhanced codes."""
    assert parse_code("host 192.0.2.5 said 550 no") == (5, 0, 0)
    assert parse_code("said: 550 5.1.1 x") == (5, 1, 1)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("message_too_large", Reason.MESSAGE_TOO_BIG),
        ("spam_rejected", Reason.SPAM_BLOCKED),
        ("user_unknown", Reason.USER_UNKNOWN),
        ("no-such-reason", None),
        ("", None),
        (None, None),
    ],
)
def test_reason_of_reads_old_and_unknown_names(stored: str | None, expected: Reason | None) -> None:
    """Stored reason strings from before the taxonomy (and unknown ones) map without raising."""
    assert reason_of(stored) is expected
