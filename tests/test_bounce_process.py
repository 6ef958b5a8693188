"""Matching returned messages to deliveries and applying the bounce policy, on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from bouncekit import CORPUS, arf, contact, delivery, dsn, events, inbox, processor, send_to, suppressions, verp
from conftest import FIXED_NOW
from sqlalchemy import update

from mailer.audience.erasure import erase_contact
from mailer.bounces.policy import BounceOutcome
from mailer.bounces.process import BounceProcessor, split_address
from mailer.message.tokens import Tokens
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Contact, Release


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = FIXED_NOW

    def __call__(self) -> Any:
        return self.now


def _corpus(name: str, rt: Runtime, delivery_id: int, fake_token: str) -> bytes:
    """A corpus notice with its fake VERP address replaced by the delivery's genuine one."""
    raw = (CORPUS / name).read_bytes()
    return raw.replace(f"bounces+{fake_token}".encode(), verp(rt, delivery_id).split("@")[0].encode())


def test_hard_bounce_via_token_marks_bounced_and_suppresses(rt: Runtime) -> None:
    """A 5.1.1 notice to a genuine VERP address bounces the delivery and suppresses the address everywhere."""
    sent = send_to(rt, "gone@example.org")
    raw = dsn(sent.email, to=verp(rt, sent.delivery_id), own_id="<n-1@mx.example.net>")

    result = processor(rt).process(raw)

    assert result.outcome is BounceOutcome.BOUNCED
    assert result.suppressed == ("gone@example.org",)
    row = delivery(rt, sent.delivery_id)
    assert (row.status, row.reason, row.last_code) == ("bounced", "user_unknown", 550)
    assert "5.1.1" in (row.last_reply or "")
    [event] = events(rt, sent.delivery_id)
    assert (event.kind, event.code, event.contact_id) == ("bounced", 550, sent.contact_id)
    assert event.detail is not None and event.detail.startswith("5.1.1 smtp; 550 5.1.1")
    assert event.raw is not None and "Undelivered Mail" in event.raw
    supp = suppressions(rt)[("gone@example.org", "*")]
    assert (supp.reason, supp.source) == ("hard_bounce", "bounce <n-1@mx.example.net>")


def test_forged_token_is_ignored_even_when_address_and_message_id_match(rt: Runtime) -> None:
    """A notice whose VERP token fails the signature check writes nothing, whatever else it names."""
    sent = send_to(rt, "target@example.org")
    genuine = verp(rt, sent.delivery_id)
    forged = genuine.replace(genuine.split("-")[1][:4], "0000")
    other_key = Tokens("some-other-secret").verp_address(sent.delivery_id, "bounces.example.com")
    for to in (forged, other_key, "bounces+123@bounces.example.com"):
        raw = dsn(sent.email, to=to, original_message_id=sent.message_id)
        assert processor(rt).process(raw).outcome is BounceOutcome.UNMATCHED
    assert events(rt) == []
    assert suppressions(rt) == {}
    assert delivery(rt, sent.delivery_id).status == "sent"


def test_match_by_message_id_without_token_is_kept_for_review_only(rt: Runtime) -> None:
    """A hard bounce without a VERP token, matched by the returned Message-ID, is kept for staff review: no suppression, no change."""
    sent = send_to(rt, "moved@example.org")
    raw = dsn("moved@example.org", to="press@harbor.example.org", original_message_id=sent.message_id)
    proc = processor(rt, soft_threshold=1)

    result = proc.process(raw)

    assert (result.outcome, result.delivery_ids, result.suppressed) == (BounceOutcome.REVIEW, (sent.delivery_id,), ())
    assert result.handled
    assert suppressions(rt) == {}
    assert events(rt) == []
    assert delivery(rt, sent.delivery_id).status == "sent"
    [kept] = inbox(rt)
    assert (kept.category, kept.delivery_id) == ("review", sent.delivery_id)
    assert kept.summary is not None and "user_unknown" in kept.summary and "hard" in kept.summary
    assert proc.process(raw).outcome is BounceOutcome.DUPLICATE
    assert len(inbox(rt)) == 1


def test_match_by_address_picks_the_newest_delivery_for_review(rt: Runtime) -> None:
    """Without token or Message-ID, the reported address finds the newest delivery sent to it, for review only."""
    older = send_to(rt, "Pat@Example.org".lower())
    newer = send_to(rt, "pat@example.org")
    send_to(rt, "pat@example.org", status="queued")  # never left: not a candidate

    result = processor(rt).process(dsn("PAT@example.org", to="press@harbor.example.org"))

    assert (result.outcome, result.delivery_ids) == (BounceOutcome.REVIEW, (newer.delivery_id,))
    assert delivery(rt, newer.delivery_id).status == "sent"
    assert delivery(rt, older.delivery_id).status == "sent"
    assert suppressions(rt) == {}
    assert [k.delivery_id for k in inbox(rt)] == [newer.delivery_id]


def test_unmatched_notice_writes_nothing(rt: Runtime) -> None:
    """A notice about an address we never mailed is counted as unmatched and leaves no trace."""
    send_to(rt, "known@example.org")
    result = processor(rt).process(dsn("stranger@example.org", to="press@harbor.example.org"))
    assert result.outcome is BounceOutcome.UNMATCHED
    assert events(rt) == []


def test_soft_bounces_count_once_a_day_and_suppress_at_the_threshold(rt: Runtime) -> None:
    """Mailbox-full bounces: two on one day count once; the second day reaches threshold 2 and suppresses."""
    clock = Clock()
    proc = processor(rt, clock=clock, soft_threshold=2, soft_warnings=0)
    first, second, third = (send_to(rt, "full@example.org") for _ in range(3))
    full = {"status": "5.2.2", "diagnostic": "smtp; 552 5.2.2 Mailbox full"}

    assert proc.process(dsn(first.email, to=verp(rt, first.delivery_id), **full)).outcome is BounceOutcome.BOUNCED
    clock.now = FIXED_NOW + timedelta(hours=2)
    assert proc.process(dsn(second.email, to=verp(rt, second.delivery_id), **full)).outcome is BounceOutcome.BOUNCED
    row = contact(rt, first.contact_id)
    assert (row.soft_bounce_score, row.soft_bounce_last_at) == (1, FIXED_NOW)
    assert delivery(rt, second.delivery_id).reason == "mailbox_full"
    assert suppressions(rt) == {}

    clock.now = FIXED_NOW + timedelta(days=1)
    result = proc.process(dsn(third.email, to=verp(rt, third.delivery_id), **full))

    assert contact(rt, first.contact_id).soft_bounce_score == 2
    assert result.suppressed == ("full@example.org",)
    assert suppressions(rt)[("full@example.org", "*")].reason == "soft_bounce"


def test_stale_soft_score_starts_again(rt: Runtime) -> None:
    """A score whose last bounce is older than soft_reset_days (default 7, Mailman's) restarts at 1."""
    sent = send_to(rt, "sometimes@example.org")
    with transaction(rt.sessions) as session:
        session.execute(
            update(Contact)
            .where(Contact.id == sent.contact_id)
            .values(soft_bounce_score=4, soft_bounce_last_at=FIXED_NOW - timedelta(days=8))
        )
    raw = dsn(sent.email, to=verp(rt, sent.delivery_id), status="4.4.7", diagnostic="delivery time expired")

    assert processor(rt, soft_threshold=5).process(raw).outcome is BounceOutcome.BOUNCED

    assert contact(rt, sent.contact_id).soft_bounce_score == 1
    assert suppressions(rt) == {}


def test_policy_block_never_suppresses(rt: Runtime) -> None:
    """A 5.7.1 policy refusal or a rate limit bounces the delivery but never scores or suppresses."""
    proc = processor(rt, soft_threshold=1, soft_warnings=0)
    for diagnostic, reason in (
        ("smtp; 550 5.7.1 Delivery not authorized, message refused", "policy_blocked"),
        ("smtp; 550 5.7.1 Message rejected by local policy", "policy_blocked"),
        ("smtp; 450 4.7.28 Our system has detected an unusual rate of unsolicited mail", "rate_limited"),
    ):
        sent = send_to(rt, "journalist@example.org")
        result = proc.process(dsn(sent.email, to=verp(rt, sent.delivery_id), status="5.7.1", diagnostic=diagnostic))
        assert result.outcome is BounceOutcome.BOUNCED
        assert delivery(rt, sent.delivery_id).reason == reason
    assert contact(rt, sent.contact_id).soft_bounce_score == 0
    assert suppressions(rt) == {}


def test_hard_bounce_without_suppress_hard_only_bounces(rt: Runtime) -> None:
    """With suppress_hard off, a hard bounce is recorded and the delivery bounced, and nobody is suppressed."""
    sent = send_to(rt, "gone@example.org")
    result = processor(rt, suppress_hard=False).process(dsn(sent.email, to=verp(rt, sent.delivery_id)))
    assert result.outcome is BounceOutcome.BOUNCED
    assert delivery(rt, sent.delivery_id).status == "bounced"
    assert suppressions(rt) == {}


def test_delay_is_an_event_only(rt: Runtime) -> None:
    """A delay warning records a 'delayed' event and leaves the delivery sent and the address alone."""
    sent = send_to(rt, "slow@example.org")
    raw = dsn(sent.email, to=verp(rt, sent.delivery_id), action="delayed", status="4.4.1", diagnostic="timed out")

    assert processor(rt, soft_threshold=1).process(raw).outcome is BounceOutcome.DELAYED

    assert [e.kind for e in events(rt, sent.delivery_id)] == ["delayed"]
    assert delivery(rt, sent.delivery_id).status == "sent"
    assert contact(rt, sent.contact_id).soft_bounce_score == 0


def test_complaint_suppresses_at_once(rt: Runtime) -> None:
    """An ARF abuse report for a genuine VERP sender suppresses the complainer everywhere."""
    sent = send_to(rt, "jamie.reader@example.net")
    raw = _corpus("written/arf-yahoo-fbl-complaint.eml", rt, sent.delivery_id, "eyJkIjo13fQ.Z8VtQA.arf_complaint-Xq9")

    result = processor(rt).process(raw)

    assert result.outcome is BounceOutcome.COMPLAINT
    assert [e.kind for e in events(rt, sent.delivery_id)] == ["complained"]
    assert delivery(rt, sent.delivery_id).status == "sent"
    supp = suppressions(rt)[("jamie.reader@example.net", "*")]
    assert (supp.reason, supp.source) == ("complaint", "complaint <arf-77881@arf.mail.example.net>")


def test_auto_reply_is_never_a_bounce(rt: Runtime) -> None:
    """An out-of-office reply to a genuine VERP address is ignored: no event, no score."""
    sent = send_to(rt, "away@example.com")
    raw = _corpus("written/outlook-out-of-office.eml", rt, sent.delivery_id, "eyJkIjo13fQ.Z8VtQA.out_of_office-Xq9")

    result = processor(rt, soft_threshold=1).process(raw)

    assert result.outcome is BounceOutcome.IGNORED
    assert not result.handled
    assert events(rt) == []
    assert delivery(rt, sent.delivery_id).status == "sent"


def test_same_bounce_twice_is_recorded_once(rt: Runtime) -> None:
    """Processing one notice twice gives one event and one score point; the second run is a duplicate."""
    sent = send_to(rt, "full@example.org")
    raw = dsn(sent.email, to=verp(rt, sent.delivery_id), status="5.2.2", diagnostic="smtp; 552 5.2.2 Mailbox full")
    proc = processor(rt)

    assert proc.process(raw).outcome is BounceOutcome.BOUNCED
    second = proc.process(raw)

    assert second.outcome is BounceOutcome.DUPLICATE
    assert second.handled
    assert len(events(rt, sent.delivery_id)) == 1
    assert contact(rt, sent.contact_id).soft_bounce_score == 1


def test_raw_message_is_capped(rt: Runtime) -> None:
    """The raw notice kept on the event is cut at keep_raw_bytes; 0 keeps none."""
    first, second = send_to(rt, "a@example.org"), send_to(rt, "b@example.org")
    processor(rt, keep_raw_bytes=100).process(dsn(first.email, to=verp(rt, first.delivery_id)))
    processor(rt, keep_raw_bytes=0).process(dsn(second.email, to=verp(rt, second.delivery_id)))
    assert len(events(rt, first.delivery_id)[0].raw or "") == 100
    assert events(rt, second.delivery_id)[0].raw is None


def test_mailto_unsubscribe_suppresses_for_the_client(rt: Runtime) -> None:
    """Mail to unsubscribe+TOKEN@ suppresses the address for the release's client only, once."""
    sent = send_to(rt, "optout@example.org", client="harbor")
    address = Tokens.from_settings(rt.settings).mailto_unsubscribe(sent.delivery_id, "bounces.example.com")
    to = address.removeprefix("mailto:").split("?")[0]
    raw = (
        f"From: optout@example.org\r\nTo: {to}\r\nSubject: unsubscribe\r\nMessage-ID: <u1@example.org>\r\n\r\n".encode()
    )
    proc = processor(rt)

    result = proc.process(raw, envelope_recipients=[to])

    assert result.outcome is BounceOutcome.UNSUBSCRIBED
    supp = suppressions(rt)
    assert list(supp) == [("optout@example.org", "harbor")]
    assert (supp[("optout@example.org", "harbor")].reason, supp[("optout@example.org", "harbor")].source) == (
        "unsubscribed",
        "mailto",
    )
    assert proc.process(raw).outcome is BounceOutcome.DUPLICATE  # envelope read from To this time
    assert [e.kind for e in events(rt)] == ["unsubscribed"]
    forged = to.replace(to.split("-")[1][:4], "ffff")
    assert proc.process(raw, envelope_recipients=[forged]).outcome is BounceOutcome.UNMATCHED


def test_split_address_accepts_only_our_domain() -> None:
    """Only bounces+/unsubscribe+ local parts at the bounce domain are ours."""
    assert split_address("<Bounces+12-ab@Bounces.Example.com>", "bounces.example.com") == ("bounces", "12-ab")
    assert split_address("unsubscribe+9-cd@bounces.example.com", "bounces.example.com") == ("unsubscribe", "9-cd")
    assert split_address("bounces+12-ab@elsewhere.example", "bounces.example.com") is None
    assert split_address("postmaster@bounces.example.com", "bounces.example.com") is None


def _real_labels() -> list[dict[str, Any]]:
    labels: list[dict[str, Any]] = json.loads((CORPUS / "real" / "labels.json").read_text())
    return [label for label in labels if label["expected"] in ("hard", "soft", "delayed")]


@pytest.mark.parametrize("mta", ["postfix", "exim", "opensmtpd", "sendmail"])
def test_real_corpus_notices_act_as_labelled(rt: Runtime, mta: str) -> None:
    """Every real MTA notice, readdressed to a genuine VERP token, bounces, delays and suppresses as its label says."""
    proc: BounceProcessor = processor(rt)
    for label in (lab for lab in _real_labels() if lab["mta"] == mta):
        sent = send_to(rt, label["original_recipient"])
        raw = _corpus(f"real/{label['file']}", rt, sent.delivery_id, label["token"])
        result = proc.process(raw)
        expected = BounceOutcome.DELAYED if label["expected"] == "delayed" else BounceOutcome.BOUNCED
        assert result.outcome is expected, label["file"]
        assert delivery(rt, sent.delivery_id).status == ("sent" if expected is BounceOutcome.DELAYED else "bounced")
        hard = label["expected"] == "hard"
        assert (result.suppressed == (sent.email,)) is hard, label["file"]


def _sending(rt: Runtime, release_id: int) -> None:
    with transaction(rt.sessions) as session:
        session.execute(update(Release).where(Release.id == release_id).values(status="sending"))


def _release(rt: Runtime, release_id: int) -> Release:
    with transaction(rt.sessions) as session:
        found = session.get(Release, release_id)
        assert found is not None
        return found


def _release_of(rt: Runtime, delivery_id: int) -> int:
    return delivery(rt, delivery_id).release_id


@pytest.mark.parametrize(
    ("status", "diagnostic"),
    [
        (
            "5.1.8",
            "smtp; 553 5.1.8 <bounces+x@bounces.example.com>... Domain of sender address "
            "bounces+x@bounces.example.com does not exist",
        ),
        ("5.1.1", "smtp; 553 5.1.8 <bounces+x@bounces.example.com>: Sender address rejected: Domain not found"),
        ("5.7.1", "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org"),
    ],
)
def test_notice_about_our_sender_pauses_and_spares_the_recipient(rt: Runtime, status: str, diagnostic: str) -> None:
    """A DSN whose fault is our sender puts the row back in the queue (never bounced) and pauses the sending release; nobody is scored or suppressed."""
    sent = send_to(rt, "live.journalist@example.org")
    release_id = _release_of(rt, sent.delivery_id)
    _sending(rt, release_id)

    result = processor(rt, soft_threshold=1).process(
        dsn(sent.email, to=verp(rt, sent.delivery_id), status=status, diagnostic=diagnostic)
    )

    assert (result.outcome, result.suppressed) == (BounceOutcome.SENDER_REFUSED, ())
    assert suppressions(rt) == {}
    assert contact(rt, sent.contact_id).soft_bounce_score == 0
    assert [e.kind for e in events(rt, sent.delivery_id)] == ["requeued"]
    row = delivery(rt, sent.delivery_id)
    assert (row.status, row.sent_at, row.first_attempt_at) == ("queued", None, None)
    release = _release(rt, release_id)
    assert release.status == "paused"
    assert release.pause_reason is not None and "refuses our sender" in release.pause_reason


def test_notice_about_our_sender_leaves_a_finished_release_alone(rt: Runtime) -> None:
    """A sender-fault notice about a release that already finished records the event and changes no release."""
    sent = send_to(rt, "live.journalist@example.org")
    raw = dsn(
        sent.email, to=verp(rt, sent.delivery_id), status="5.1.8", diagnostic="smtp; 501 5.1.8 Sender address rejected"
    )
    assert processor(rt).process(raw).outcome is BounceOutcome.SENDER_REFUSED
    assert _release(rt, _release_of(rt, sent.delivery_id)).status == "sent"
    assert suppressions(rt) == {}


@pytest.mark.parametrize(
    ("status", "diagnostic"),
    [
        ("5.1.1", "smtp; 552 5.2.2 Over quota"),
        ("5.1.1", "smtp; 550 5.1.1 <x@example.org> - 203.0.113.9 has sent to too many recipients this hour"),
        (
            "5.2.1",
            "smtp; 550-5.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
            "additional messages from being delivered",
        ),
        (
            "5.4.4",
            "X-Postfix; Name service error for name=example.org type=MX: Malformed or unexpected name server reply",
        ),
    ],
)
def test_misused_codes_suppress_nobody(rt: Runtime, status: str, diagnostic: str) -> None:
    """Codes that providers misuse (5.1.1 for a rate limit or a full mailbox) never suppress a live journalist."""
    sent = send_to(rt, "live@example.org")
    result = processor(rt).process(dsn(sent.email, to=verp(rt, sent.delivery_id), status=status, diagnostic=diagnostic))
    assert result.outcome is BounceOutcome.BOUNCED
    assert result.suppressed == ()
    assert suppressions(rt) == {}


@pytest.mark.parametrize(
    ("feedback_type", "complaint"),
    [("abuse", True), ("fraud", True), ("virus", True), ("auth-failure", False), ("not-spam", False), ("other", False)],
)
def test_arf_feedback_types(rt: Runtime, feedback_type: str, complaint: bool) -> None:
    """ARF abuse, fraud and virus suppress the complainer; auth-failure, not-spam and other are recorded only."""
    sent = send_to(rt, "reader@example.net")
    raw = arf(sent.email, feedback_type=feedback_type, return_path=verp(rt, sent.delivery_id))

    result = processor(rt).process(raw)

    assert result.outcome is (BounceOutcome.COMPLAINT if complaint else BounceOutcome.FEEDBACK)
    assert [e.kind for e in events(rt, sent.delivery_id)] == ["complained" if complaint else "feedback"]
    assert (("reader@example.net", "*") in suppressions(rt)) is complaint
    assert delivery(rt, sent.delivery_id).status == "sent"


def test_arf_matched_only_by_message_id_is_kept_for_review(rt: Runtime) -> None:
    """An abuse report whose original carries no VERP token, only our Message-ID, suppresses nobody and is kept for review."""
    sent = send_to(rt, "reader@example.net")
    result = processor(rt).process(arf(sent.email, original_message_id=sent.message_id))
    assert result.outcome is BounceOutcome.REVIEW
    assert suppressions(rt) == {}
    assert [(k.category, k.delivery_id) for k in inbox(rt)] == [("review", sent.delivery_id)]


def test_soft_bounces_warn_three_times_a_week_apart_then_suppress(rt: Runtime) -> None:
    """Past the threshold come 3 warnings 7 days apart while the address keeps bouncing; then it is suppressed."""
    clock = Clock()
    proc = processor(rt, clock=clock, soft_threshold=2)
    full = {"status": "5.2.2", "diagnostic": "smtp; 552 5.2.2 Mailbox full"}
    contact_id = send_to(rt, "full@example.org").contact_id

    def bounce(days: int) -> tuple[str, ...]:
        clock.now = FIXED_NOW + timedelta(days=days)
        sent = send_to(rt, "full@example.org")
        return proc.process(dsn(sent.email, to=verp(rt, sent.delivery_id), **full)).suppressed

    assert bounce(0) == ()  # score 1
    assert bounce(1) == ()  # score 2: warning 1
    assert bounce(4) == ()  # not due
    assert bounce(8) == ()  # warning 2
    assert bounce(15) == ()  # warning 3
    assert contact(rt, contact_id).soft_bounce_warnings == 3
    assert bounce(20) == ()  # the last warning is 5 days old
    assert suppressions(rt) == {}
    assert bounce(22) == ("full@example.org",)
    warnings = [e.detail for e in events(rt) if e.kind == "bounce_warning"]
    assert len(warnings) == 3 and warnings[0] is not None and warnings[0].startswith("soft-bounce warning 1 of 3")


def test_stale_score_clears_the_warnings(rt: Runtime) -> None:
    """After a quiet week the score and its warnings start again, so an old streak never suppresses."""
    clock = Clock()
    proc = processor(rt, clock=clock, soft_threshold=1, soft_warnings=1)
    full = {"status": "5.2.2", "diagnostic": "smtp; 552 5.2.2 Mailbox full"}
    first = send_to(rt, "full@example.org")
    proc.process(dsn(first.email, to=verp(rt, first.delivery_id), **full))  # warning 1
    assert contact(rt, first.contact_id).soft_bounce_warnings == 1
    clock.now = FIXED_NOW + timedelta(days=9)
    later = send_to(rt, "full@example.org")
    result = proc.process(dsn(later.email, to=verp(rt, later.delivery_id), **full))
    assert result.suppressed == ()
    row = contact(rt, first.contact_id)
    assert (row.soft_bounce_score, row.soft_bounce_warnings) == (1, 1)
    assert row.soft_bounce_warned_at == clock.now


def test_erasure_deletes_notices_kept_for_review(rt: Runtime) -> None:
    """Erasing a contact deletes the notices kept for review about its deliveries (they quote the address)."""
    sent = send_to(rt, "moved@example.org")
    processor(rt).process(dsn(sent.email, to="press@harbor.example.org", original_message_id=sent.message_id))
    assert len(inbox(rt)) == 1
    with transaction(rt.sessions) as session:
        erase_contact(session, "moved@example.org", actor="admin@example.org", now=FIXED_NOW)
    assert inbox(rt) == []
