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

from mailer.bounces.parse import extract_token, parse_message
from mailer.bounces.report import BounceClass, BounceReport, Kind, RecipientStatus, report_to_json
from mailer.domain.status import Reason

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
            "fault": "recipient",
        }
    ]
    json.dumps(data)


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
