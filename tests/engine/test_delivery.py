"""The delivery engine against a real aiosmtpd server and a real database (both backends)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from mailer.domain.states import DeliveryStatus, ReleaseStatus, SuppressionReason
from mailer.engine.dispatch import Dispatcher
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import deliveries as delivery_store
from mailer.store.db import transaction
from mailer.store.suppressions import add_suppression, is_suppressed
from tests.support.engine import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
    release_status,
)
from tests.support.faultsmtp import FaultSMTPServer

pytestmark = pytest.mark.shared_smtp

EVERYONE = [Variant("press-all", "list:press")]


def people(n: int, domain: str = "example.com") -> list[str]:
    return [f"j{i:04d}@{domain}" for i in range(n)]


async def send_all(rt: Runtime, **kwargs: object) -> Dispatcher:
    pool = make_transport(rt.settings.smtp)
    dispatcher = Dispatcher(rt, pool, **kwargs)  # type: ignore[arg-type]
    try:
        await dispatcher.run_once()
    finally:
        await pool.close()
    return dispatcher


async def test_every_recipient_gets_exactly_one_copy(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """A 60-recipient release: each gets one message, the ledger says sent, the release is sent."""
    clock = Clock()
    ert = engine_runtime(rt, smtp.port, clock, retry__batch_size=25)
    add_contacts(ert, tmp_path, people(60))
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    rows = deliveries(ert, rid)
    assert {r.status for r in rows.values()} == {"sent"}
    assert len(smtp.accepted) == 60 and smtp.duplicates() == []
    assert {a.recipient for a in smtp.accepted} == set(rows)
    assert release_status(ert, rid) == "sent"
    msg = email.message_from_bytes(smtp.raw[0], policy=email.policy.default)
    row = rows[smtp.accepted[0].recipient]
    assert msg["Message-ID"] == row.message_id
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert smtp.accepted[0].sender.startswith("bounces+")


async def test_replanning_and_second_run_add_nothing(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Running the engine again after a finished send plans and sends nothing more."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, people(5))
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    await send_all(ert)
    with transaction(ert.sessions) as session:
        from mailer.store.tables import Segment

        seg = session.query(Segment).filter_by(slug="press-all").one()
        added = delivery_store.plan_segment(
            session,
            release_id=rid,
            segment_id=seg.id,
            rule=seg.rule,
            scopes=("*", "harbor"),
            message_id_prefix="x",
            message_id_domain="mail.example.com",
            now=ert.clock(),
        )
    assert added == 0
    assert len(smtp.accepted) == 5


async def test_contact_in_two_segments_gets_one_copy_of_the_first_variant(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Segments overlap: one delivery per contact, with the first segment's subject."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, ["both@example.com", "tv@example.com"], list_slug="tv", beat="tv-booking")
    add_contacts(ert, tmp_path, ["both@example.com", "print@example.com"], list_slug="print", beat="politics")
    rid = approved_release(
        ert,
        [
            Variant("tv-seg", "list:tv", subject="For bookers: guests available"),
            Variant("print-seg", "list:print", subject="For reporters"),
        ],
    )
    await send_all(ert)
    assert smtp.copies_of("both@example.com") == 1
    subjects = {
        a.recipient: email.message_from_bytes(raw, policy=email.policy.default)["Subject"]
        for a, raw in zip(smtp.accepted, smtp.raw, strict=True)
    }
    assert subjects == {
        "both@example.com": "For bookers: guests available",
        "tv@example.com": "For bookers: guests available",
        "print@example.com": "For reporters",
    }
    assert len(deliveries(ert, rid)) == 3


async def test_suppressed_before_planning_is_recorded_not_sent(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """A globally suppressed and a client-suppressed address get `suppressed` rows and no mail."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, ["gone@example.com", "client-out@example.com", "ok@example.com"])
    with transaction(ert.sessions) as session:
        add_suppression(session, "gone@example.com", reason=SuppressionReason.UNSUBSCRIBED, source="t", now=ert.clock())
        add_suppression(
            session,
            "client-out@example.com",
            reason=SuppressionReason.UNSUBSCRIBED,
            source="t",
            now=ert.clock(),
            scope="harbor",
        )
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    rows = deliveries(ert, rid)
    assert rows["gone@example.com"].status == "suppressed"
    assert rows["client-out@example.com"].status == "suppressed"
    assert [a.recipient for a in smtp.accepted] == ["ok@example.com"]


async def test_unsubscribe_during_a_live_send_is_honored(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """An address suppressed after the first batch was sent never receives the release."""
    ert = engine_runtime(rt, smtp.port, Clock(), retry__batch_size=5)
    emails = people(20)
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool)
    dispatcher.plan_due()
    assert await dispatcher.send_batch(rid) == 5
    # an address whose row is still queued (planning order is not address order)
    late = next(e for e, r in deliveries(ert, rid).items() if r.status == "queued")
    with transaction(ert.sessions) as session:
        add_suppression(session, late, reason=SuppressionReason.UNSUBSCRIBED, source="one-click", now=ert.clock())
    await dispatcher.run_once()
    await pool.close()
    assert smtp.copies_of(late) == 0
    assert deliveries(ert, rid)[late].status == "suppressed"
    assert len(smtp.accepted) == 19


async def test_rcpt_faults_end_in_the_right_states(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """550 5.1.1 fails and suppresses; 452 and 552 at RCPT defer; the rest are sent."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, ["dead@example.com", "full@example.com", "quota@example.com", "fine@example.com"])
    smtp.rcpt_reply["dead@example.com"] = "550 5.1.1 No such user"
    smtp.fail_rcpt("full@example.com", "452 4.2.2 Mailbox full", times=None)
    smtp.fail_rcpt("quota@example.com", "552 5.2.2 Over quota", times=None)
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    rows = deliveries(ert, rid)
    assert (rows["dead@example.com"].status, rows["dead@example.com"].reason) == ("failed", "hard_bounce")
    assert rows["full@example.com"].status == "deferred"
    assert rows["quota@example.com"].status == "deferred"
    assert rows["fine@example.com"].status == "sent"
    assert rows["full@example.com"].next_attempt_at is not None
    with transaction(ert.sessions) as session:
        assert is_suppressed(session, "dead@example.com")
        assert not is_suppressed(session, "full@example.com")
    assert release_status(ert, rid) == "sending"  # deferred rows keep it open


async def test_deferred_rows_retry_with_backoff_reuse_message_id_then_give_up(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """A 452 recipient is retried when its time comes with the same Message-ID; a
    permanently deferring one fails after the give-up time."""
    clock = Clock()
    ert = engine_runtime(rt, smtp.port, clock, retry__schedule=[60, 120], retry__give_up_after=600)
    add_contacts(ert, tmp_path, ["later@example.com", "never@example.com"])
    smtp.fail_rcpt("later@example.com", "452 4.2.2 Mailbox full", times=1)
    smtp.fail_rcpt("never@example.com", "451 4.4.1 Try again", times=None)
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    first = deliveries(ert, rid)
    assert first["later@example.com"].status == "deferred"
    clock.advance(30)
    await send_all(ert)  # not due yet
    assert smtp.rcpt_attempts("later@example.com") == 1
    clock.advance(31)
    await send_all(ert)
    second = deliveries(ert, rid)
    assert second["later@example.com"].status == "sent"
    assert second["later@example.com"].message_id == first["later@example.com"].message_id
    assert second["later@example.com"].attempts == 2
    for _ in range(8):
        clock.advance(130)
        await send_all(ert)
    final = deliveries(ert, rid)
    assert (final["never@example.com"].status, final["never@example.com"].reason) == ("failed", "gave up retrying")
    assert release_status(ert, rid) == "partial"


async def test_data_faults_policy_and_421(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """451 at DATA defers; spam refusal fails that message; a 5.7.1 policy refusal defers; none
    suppresses; 421 defers and the connection is replaced."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(
        ert,
        tmp_path,
        [
            "tempfail@example.com",
            "spam@example.com",
            "policy@example.com",
            "closing@example.com",
            "after@example.com",
        ],
    )
    smtp.fail_data("tempfail@example.com", "451 4.3.0 Try later")
    smtp.data_reply["spam@example.com"] = "554 5.7.1 Message rejected as spam"
    smtp.data_reply["policy@example.com"] = "550 5.7.1 Delivery not authorized, message refused"
    smtp.fail_data("closing@example.com", "421 4.7.0 Closing connection")
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    rows = deliveries(ert, rid)
    assert rows["tempfail@example.com"].status == "deferred"
    assert (rows["spam@example.com"].status, rows["spam@example.com"].reason) == ("failed", "spam_blocked")
    assert (rows["policy@example.com"].status, rows["policy@example.com"].reason) == ("deferred", "policy_blocked")
    assert rows["policy@example.com"].next_attempt_at is not None
    assert rows["closing@example.com"].status == "deferred"
    assert rows["after@example.com"].status == "sent"
    with transaction(ert.sessions) as session:
        assert not is_suppressed(session, "spam@example.com")
        assert not is_suppressed(session, "policy@example.com")


async def test_policy_refusal_burst_pauses_the_release(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Five 5.7.1 refusals in a row (streak 5) pause the release at once, inside one batch, and
    say why; the refused rows are deferred (not lost), the rest stay queued, nobody suppressed."""
    ert = engine_runtime(rt, smtp.port, Clock(), breaker__streak=5, retry__batch_size=200, smtp__pool_size=1)
    emails = people(30)
    add_contacts(ert, tmp_path, emails)
    for e in emails:
        smtp.data_reply[e] = "550 5.7.1 Delivery not authorized, message refused"
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    assert release_status(ert, rid) == "paused"
    from mailer.store.ledger.report import release_report

    with transaction(ert.sessions) as session:
        report = release_report(session, rid)
    assert "5.7.1" in (report.pause_reason or "") and "policy_blocked" in (report.pause_reason or "")
    assert f"mailer releases resume {rid}" in (report.pause_reason or "")
    assert report.counts == {"deferred": 5, "queued": 25}
    with transaction(ert.sessions) as session:
        assert not any(is_suppressed(session, e) for e in emails)


async def test_connection_lost_after_data_is_unknown_and_never_resent(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """The server drops the connection after the data, or stalls past the timeout: `unknown`, no resend."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__data_timeout=0.5)
    add_contacts(ert, tmp_path, ["dropped@example.com", "stalled@example.com", "fine@example.com"])
    smtp.drop_after_data("dropped@example.com", count_as_accepted=True)
    smtp.stall_after_data("stalled@example.com", seconds=2.0, count_as_accepted=True)
    rid = approved_release(ert, EVERYONE)
    await send_all(ert)
    await send_all(ert)
    rows = deliveries(ert, rid)
    assert rows["dropped@example.com"].status == "unknown"
    assert rows["stalled@example.com"].status == "unknown"
    assert rows["fine@example.com"].status == "sent"
    assert smtp.copies_of("dropped@example.com") == 1
    assert release_status(ert, rid) == "partial"
    # staff decide: retry the unknown rows, with the same Message-ID
    before = rows["dropped@example.com"].message_id
    with transaction(ert.sessions) as session:
        assert workflow.retry(session, rid, [DeliveryStatus.UNKNOWN], actor="staff", now=ert.clock()) == 2
    await send_all(ert)
    after = deliveries(ert, rid)
    assert after["dropped@example.com"].status == "sent" and after["dropped@example.com"].message_id == before
    assert release_status(ert, rid) == "sent"


async def test_pause_resume_and_cancel_mid_send(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Paused: nothing more is claimed; resumed: the rest is sent; cancelled: the rest is cancelled."""
    ert = engine_runtime(rt, smtp.port, Clock(), retry__batch_size=4)
    add_contacts(ert, tmp_path, people(12))
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool)
    dispatcher.plan_due()
    await dispatcher.send_batch(rid)
    with transaction(ert.sessions) as session:
        workflow.pause(session, rid, actor="staff", now=ert.clock())
    await dispatcher.run_once()
    assert len(smtp.accepted) == 4 and release_status(ert, rid) == "paused"
    with transaction(ert.sessions) as session:
        workflow.resume(session, rid, actor="staff", now=ert.clock())
    await dispatcher.send_batch(rid)
    with transaction(ert.sessions) as session:
        assert workflow.cancel(session, rid, actor="staff", now=ert.clock()).pending == 4
    await dispatcher.run_once()
    await pool.close()
    counts = {s: sum(1 for r in deliveries(ert, rid).values() if r.status == s) for s in ("sent", "cancelled")}
    assert counts == {"sent": 8, "cancelled": 4}
    assert len(smtp.accepted) == 8
    assert release_status(ert, rid) == "cancelled"


async def test_release_is_never_sent_while_rows_are_pending(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """finish_releases leaves a release with queued rows alone."""
    ert = engine_runtime(rt, smtp.port, Clock(), retry__batch_size=2)
    add_contacts(ert, tmp_path, people(5))
    rid = approved_release(ert, EVERYONE)
    pool = make_transport(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool)
    dispatcher.plan_due()
    await dispatcher.send_batch(rid)
    assert dispatcher.finish_releases() == []
    assert release_status(ert, rid) == "sending"
    await dispatcher.run_once()
    await pool.close()
    assert release_status(ert, rid) == "sent"


async def test_release_not_due_yet_is_left_alone(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """An approved release whose send_at is in the future is not planned until its time."""
    clock = Clock()
    ert = engine_runtime(rt, smtp.port, clock)
    add_contacts(ert, tmp_path, people(3))
    from datetime import timedelta

    rid = approved_release(ert, EVERYONE, send_at=clock.now + timedelta(hours=1))
    await send_all(ert)
    assert release_status(ert, rid) == ReleaseStatus.APPROVED.value and smtp.accepted == []
    clock.advance(3601)
    await send_all(ert)
    assert release_status(ert, rid) == "sent" and len(smtp.accepted) == 3


async def test_content_changed_after_approval_is_refused(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Editing the stored body after approval: the engine refuses it and returns it to draft."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, people(2))
    rid = approved_release(ert, EVERYONE)
    from mailer.store.tables import Release

    with transaction(ert.sessions) as session:
        release = session.get(Release, rid)
        assert release is not None
        release.body += "\nOne more sentence nobody approved."
    await send_all(ert)
    assert release_status(ert, rid) == "draft" and smtp.accepted == []
