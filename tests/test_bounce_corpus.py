"""The written corpus (tests/bounces/corpus): one notice in the shape of each MTA and
provider the bounce path must read, ARF reports of each feedback type, and auto-replies
in five languages. Every file's label names the failed recipient, hard/soft, the reason
and the fault; nothing else may be reported as a failed recipient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailer.bounces.parse import parse_message
from mailer.bounces.report import BounceClass, Kind

CORPUS = Path(__file__).parent / "bounces" / "corpus"
LABELS: list[dict[str, Any]] = json.loads((CORPUS / "labels.json").read_text())


@pytest.mark.parametrize("label", LABELS, ids=[label["file"] for label in LABELS])
def test_corpus_notice_reads_as_labelled(label: dict[str, Any]) -> None:
    """Kind, failed recipient (and no other), hard/soft, reason, fault and token are as labelled."""
    report = parse_message((CORPUS / label["file"]).read_bytes())

    assert report.kind is Kind(label["kind"])
    assert report.token == label["token"]
    if label["original_recipient"] is None:
        assert report.recipients == ()
        return
    expected = {label["original_recipient"].lower()} | {a["address"].lower() for a in label.get("also", [])}
    assert {r.address.lower() for r in report.recipients} == expected
    [found] = [r for r in report.recipients if r.address.lower() == label["original_recipient"].lower()]
    if label["expected"] is not None:
        want = BounceClass.HARD if label["expected"] == "hard" else BounceClass.SOFT
        assert found.bounce_class is want
    assert found.reason.value == label["reason"]
    if label["fault"] is not None:
        assert found.fault is not None and found.fault.value == label["fault"]


def test_corpus_covers_every_shape_the_issue_names() -> None:
    """The corpus holds each named MTA/provider, each ARF feedback type and auto-replies in five languages."""
    mtas = {label["mta"] for label in LABELS}
    for name in [
        "postfix",
        "exim",
        "sendmail",
        "qmail",
        "courier",
        "exchange-2003",
        "exchange-2007",
        "exchange-2010",
        "office365",
        "domino",
        "oracle-messaging-server",
        "apache-james",
        "zimbra",
        "amazon-ses",
        "amazon-workmail",
        "gmail",
        "yahoo",
        "aol",
        "outlook-com",
        "verizon",
        "godaddy",
        "mail.ru",
        "zoho",
        "kddi-au",
        "docomo",
        "auto-reply-en",
        "auto-reply-de",
        "auto-reply-fr",
        "auto-reply-es",
        "auto-reply-ja",
    ]:
        assert name in mtas, name
    arf = {label["file"] for label in LABELS if label["mta"] == "arf"}
    assert arf == {f"arf-{t}.eml" for t in ("abuse", "fraud", "virus", "auth-failure", "not-spam", "other")}
