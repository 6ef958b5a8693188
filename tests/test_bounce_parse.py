"""Bounce parsing and classification against two labelled corpora.

``tests/bounces/real``: notices produced by real Postfix, Exim, OpenSMTPD and Sendmail
(see its README upstream in the shared corpus). ``tests/bounces/written``: notices written
in the shapes of other MTAs and providers (qmail, Exchange/Office 365, Gmail, Yahoo,
Outlook.com, old Postfix/Sendmail/Exim, SES), plus a complaint, auto-replies and a human
reply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailer.bounces.classify import BounceClass, Reason, classify
from mailer.bounces.parse import (
    BounceReport,
    Kind,
    RecipientStatus,
    extract_token,
    parse_message,
    report_to_json,
)

CORPORA = Path(__file__).parent / "bounces"


def _labels(corpus: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((CORPORA / corpus / "labels.json").read_text())
    return [{**entry, "corpus": corpus} for entry in entries]


LABELS = _labels("real") + _labels("written")


def _expected_kind(label: dict[str, Any]) -> Kind:
    """The written corpus names the kind; the real one implies it by ``expected``."""
    if "kind" in label:
        return Kind(label["kind"])
    if label["expected"] == "not_bounce":
        return Kind.AUTO_REPLY if label["scenario"] == "auto_reply" else Kind.NOT_BOUNCE
    return Kind.DELAY if label["expected"] == "delayed" else Kind.BOUNCE


def _expected_class(label: dict[str, Any]) -> BounceClass | None:
    """``delayed`` is always soft; complaints, auto-replies and replies have no class."""
    value = label["expected"]
    if value == "delayed":
        return BounceClass.SOFT
    return BounceClass(value) if value in ("hard", "soft") else None


def _parse(label: dict[str, Any]) -> BounceReport:
    return parse_message((CORPORA / label["corpus"] / label["file"]).read_bytes())


def _recipient(report: BounceReport, address: str) -> RecipientStatus:
    matches = [r for r in report.recipients if r.address.lower() == address.lower()]
    assert matches, f"{address} not among {[r.address for r in report.recipients]}"
    return matches[0]


IDS = [f"{label['corpus']}/{label['file']}" for label in LABELS]


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_kind_matches_label(label: dict[str, Any]) -> None:
    # Each notice is recognised as bounce, delay, complaint, auto-reply or not a notice.
    assert _parse(label).kind is _expected_kind(label)


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_recipient_and_class_match_label(label: dict[str, Any]) -> None:
    # The recipient the message was sent to is found, with the labelled hard/soft class;
    # auto-replies and human replies report no recipient at all.
    report = _parse(label)
    if _expected_kind(label) in (Kind.AUTO_REPLY, Kind.NOT_BOUNCE):
        assert report.recipients == ()
        return
    found = _recipient(report, label["original_recipient"])
    expected = _expected_class(label)
    if expected is not None:
        assert found.bounce_class is expected


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_token_matches_label(label: dict[str, Any]) -> None:
    # The VERP token is read from the envelope recipient or the original's Return-Path.
    assert _parse(label).token == label["token"]


WRITTEN = [label for label in LABELS if label["corpus"] == "written"]


@pytest.mark.parametrize("label", WRITTEN, ids=[label["file"] for label in WRITTEN])
def test_original_message_id_is_the_returned_messages(label: dict[str, Any]) -> None:
    # original_message_id is the returned original's Message-ID, never the notice's own.
    message_id = label["original_message_id"]
    expected = f"<{message_id}>" if message_id else None
    assert _parse(label).original_message_id == expected


def test_dsn_with_two_recipients_reports_both_outcomes() -> None:
    # One DSN: the first recipient failed for good, the second is still being retried.
    label = next(lb for lb in WRITTEN if lb["file"] == "sendmail-dsn-two-recipients.eml")
    report = _parse(label)
    assert report.kind is Kind.BOUNCE
    (other,) = label["also"]
    delayed = _recipient(report, other["address"])
    assert (delayed.action, delayed.status, delayed.bounce_class) == (
        "delayed",
        "4.4.1",
        BounceClass.SOFT,
    )


def test_opensmtpd_expiry_with_action_delayed_is_a_final_failure() -> None:
    # OpenSMTPD's "Envelope expired" says Action: delayed, Status 4.4.7, yet it gave up.
    label = next(lb for lb in LABELS if lb["file"] == "opensmtpd-connection-refused-expired.eml")
    report = _parse(label)
    assert report.kind is Kind.BOUNCE
    assert report.recipients[0].action == "failed"
    assert report.recipients[0].reason is Reason.EXPIRED


def test_report_to_json_has_exactly_the_agreed_shape() -> None:
    # Other modules and the CLI rely on these exact keys.
    label = next(lb for lb in LABELS if lb["file"] == "postfix-unknown-user-failed.eml")
    data = report_to_json(_parse(label), file="x.eml")
    assert list(data) == ["file", "kind", "recipients", "token", "original_message_id"]
    assert data["file"] == "x.eml" and data["kind"] == "bounce"
    assert data["recipients"] == [
        {
            "address": "nosuchuser@users.example",
            "action": "failed",
            "status": "5.1.1",
            "diagnostic": 'X-Postfix; unknown user: "nosuchuser"',
            "class": "hard",
            "reason": "user_unknown",
        }
    ]
    json.dumps(data)


# --- classify -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("5.1.1", None, (BounceClass.HARD, Reason.USER_UNKNOWN)),
        ("5.1.2", None, (BounceClass.HARD, Reason.DOMAIN_UNKNOWN)),
        ("5.1.6", None, (BounceClass.HARD, Reason.MAILBOX_DISABLED)),
        ("5.1.10", None, (BounceClass.HARD, Reason.USER_UNKNOWN)),
        ("5.2.1", None, (BounceClass.HARD, Reason.MAILBOX_DISABLED)),
        ("5.2.2", None, (BounceClass.SOFT, Reason.MAILBOX_FULL)),
        ("4.2.2", None, (BounceClass.SOFT, Reason.MAILBOX_FULL)),
        ("5.3.4", None, (BounceClass.SOFT, Reason.MESSAGE_TOO_LARGE)),
        ("5.2.3", None, (BounceClass.SOFT, Reason.MESSAGE_TOO_LARGE)),
        ("4.4.7", None, (BounceClass.SOFT, Reason.EXPIRED)),
        ("4.4.1", None, (BounceClass.SOFT, Reason.NETWORK)),
    ],
)
def test_classify_status_code_decides(
    status: str, diagnostic: str | None, expected: tuple[BounceClass, Reason]
) -> None:
    # A specific RFC 3463 status code decides on its own.
    assert classify(status, diagnostic) == expected


def test_classify_status_wins_over_contradicting_text() -> None:
    # Status first: a 5.2.2 stays a full mailbox even if the text says "user unknown".
    assert classify("5.2.2", "550 user unknown") == (BounceClass.SOFT, Reason.MAILBOX_FULL)


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("5.0.0", "smtp; 550 unknown user", (BounceClass.HARD, Reason.USER_UNKNOWN)),
        ("5.0.0", "Unrouteable address", (BounceClass.HARD, Reason.USER_UNKNOWN)),
        (None, "550 Requested action not taken: mailbox unavailable", (BounceClass.HARD, Reason.USER_UNKNOWN)),
        ("5.0.0", "Domain does not exist", (BounceClass.HARD, Reason.DOMAIN_UNKNOWN)),
        (None, "Host or domain name not found. NXDOMAIN", (BounceClass.HARD, Reason.DOMAIN_UNKNOWN)),
        ("5.0.0", "smtp; 550 5.1.1 <a@example.org>: no such user", (BounceClass.HARD, Reason.USER_UNKNOWN)),
        (None, "552 Recipient's mailbox is over quota", (BounceClass.SOFT, Reason.MAILBOX_FULL)),
        ("5.0.0", "message size exceeds fixed maximum", (BounceClass.SOFT, Reason.MESSAGE_TOO_LARGE)),
        (None, "554 Connection refused", (BounceClass.SOFT, Reason.NETWORK)),
        ("5.0.0", "retry timeout exceeded", (BounceClass.SOFT, Reason.EXPIRED)),
        ("5.0.0", "retry time not reached for any host", (BounceClass.SOFT, Reason.EXPIRED)),
        ("5.0.0", "something nobody has seen before", (BounceClass.SOFT, Reason.OTHER)),
        (None, None, (BounceClass.SOFT, Reason.OTHER)),
    ],
)
def test_classify_text_fallback(
    status: str | None, diagnostic: str | None, expected: tuple[BounceClass, Reason]
) -> None:
    # A missing or generic status (Exim and OpenSMTPD write 5.0.0) leaves the text to decide.
    assert classify(status, diagnostic) == expected


def test_classify_5xx_reply_alone_is_not_hard() -> None:
    # RFC 5321 5yz is permanent for the transaction, not proof that the address is dead.
    assert classify(None, "550 Requested action aborted") == (BounceClass.SOFT, Reason.OTHER)


@pytest.mark.parametrize(
    "diagnostic",
    [
        "550 5.7.1 <a@example.org>: Recipient address rejected: user unknown",
        "550 5.7.1 Message rejected as spam",
        "554 5.7.1 Client host blocked using rbl.example.org",
    ],
)
def test_classify_5_7_x_is_never_hard(diagnostic: str) -> None:
    # Policy status (RFC 3463 X.7.x) keeps the address even when the text says user unknown.
    bounce_class, reason = classify("5.7.1", diagnostic)
    assert bounce_class is BounceClass.SOFT
    assert reason in (Reason.POLICY_BLOCKED, Reason.SPAM_REJECTED)


def test_classify_spam_text_under_policy_code_is_spam() -> None:
    # A 5.7.1 whose text says spam is reported as spam_rejected.
    assert classify("5.7.1", "Message rejected as spam") == (BounceClass.SOFT, Reason.SPAM_REJECTED)


@pytest.mark.parametrize("status", ["5.1.1", "4.0.0", "5.0.0", None])
def test_classify_delayed_is_always_soft(status: str | None) -> None:
    # RFC 3464 "delayed": still being retried, so never hard whatever the code says.
    bounce_class, _ = classify(status, "550 5.1.1 user unknown", action="delayed")
    assert bounce_class is BounceClass.SOFT


def test_classify_4xx_enhanced_code_in_text_is_soft() -> None:
    # Exim writes 5.0.0 after a 452 4.2.2 timed out: the quoted 4.2.2 is the truth.
    result = classify("5.0.0", "smtp; 452 4.2.2 Mailbox full: retry timeout exceeded")
    assert result == (BounceClass.SOFT, Reason.MAILBOX_FULL)


def test_classify_ignores_ip_addresses_that_look_like_codes() -> None:
    # "192.0.2.5" and "127.0.0.15" must not be read as status codes.
    assert classify(None, "host 192.0.2.5 [127.0.0.15] said: no such user") == (
        BounceClass.HARD,
        Reason.USER_UNKNOWN,
    )


# --- extract_token ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bounces+abc.DEF-123_x@mail.example.com", "abc.DEF-123_x"),
        ("<bounces+abc.DEF-123_x@mail.example.com>", "abc.DEF-123_x"),
        ('"Bounce Handler" <bounces+tok1@mail.example.com>', "tok1"),
        ("someone@example.org, bounces+tok2@mail.example.com", "tok2"),
        ("unsubscribe+tok3@mail.example.com", None),
        ("<unsubscribe+tok3@mail.example.com>", None),
        ("notbounces+tok4@mail.example.com", None),
        ("bounces@mail.example.com", None),
        ("", None),
    ],
)
def test_extract_token(value: str, expected: str | None) -> None:
    # Only a bounces+TOKEN@ address yields a token, bare, bracketed or with a display name.
    assert extract_token(value) == expected


# --- garbage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81",
        b"not an email at all",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
        b"Content-Type: message/delivery-status\n\n\xff\xfe\n--",
        b"From: MAILER-DAEMON@example.org\nSubject: failure notice\n"
        b"Content-Type: text/plain; charset=no-such-charset\nContent-Transfer-Encoding: base64\n\n"
        b"!!!not base64!!!",
        bytes(range(256)) * 20,
    ],
)
def test_garbage_gives_not_bounce_without_raising(raw: bytes) -> None:
    # Anything that is not a notice is NOT_BOUNCE with no recipients; nothing raises.
    report = parse_message(raw)
    assert report.kind is Kind.NOT_BOUNCE
    assert report.recipients == ()
