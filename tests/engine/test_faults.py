"""Who is at fault decides what happens: a relay refusing our sender costs a pause and
nothing else; the circuit breaker pauses on a streak or a rate of refusals, counted over
every worker; remote policy refusals never fail or suppress anybody before give-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.engine.dispatch import Dispatcher
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store.db import transaction
from mailer.store.ledger.report import release_report
from mailer.store.tables import Delivery, Suppression
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


async def run_once(rt: Runtime, *, owner: str | None = None) -> None:
    pool = make_transport(rt.settings.smtp)
    try:
        await Dispatcher(rt, pool, owner=owner).run_once()
    finally:
        await pool.close()


def suppressed_count(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        return session.scalar(select(func.count()).select_from(Suppression)) or 0


def pause_reason(rt: Runtime, release_id: int) -> str:
    with transaction(rt.sessions) as session:
        return str(release_report(session, release_id).pause_reason or "")


def ids_in_order(rt: Runtime, release_id: int) -> list[str]:
    """The release's addresses in delivery-id order (the order workers claim them)."""
    with transaction(rt.sessions) as session:
        return list(
            session.scalars(select(Delivery.email).where(Delivery.release_id == release_id).order_by(Delivery.id))
        )


def plan(rt: Runtime) -> None:
    Dispatcher(rt, make_transport(rt.settings.smtp)).plan_due()


@pytest.mark.parametrize(
    "refusal",
    [
        "553 5.1.8 <bounces+x@bounces.example.com>: Sender address rejected: Domain not found",
        "550 5.1.7 Invalid address syntax of the sender",
        "550 5.7.1 Client host rejected: No PTR record",
        "550 5.7.23 SPF validation failed for the sending domain",
    ],
)
async def test_relay_refusing_our_sender_pauses_and_costs_nothing_else(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, refusal: str
) -> None:
    """MAIL FROM refused with 5.1.8/5.1.7/5.7.x: at most one message per connection tried, 0
    failed, 0 suppressed, no attempt counted, the release paused with the reply and the way
    out; after `releases resume` every recipient gets exactly one copy."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=4, retry__batch_size=200)
    emails = [f"s{i:03d}@example.com" for i in range(40)]
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    smtp.fail_mail(refusal, times=None)
    await run_once(ert)
    assert release_status(ert, rid) == "paused"
    assert smtp.mail_attempts <= 4
    rows = deliveries(ert, rid)
    assert {r.status for r in rows.values()} == {"queued"}
    assert {(r.attempts, r.first_attempt_at) for r in rows.values()} == {(0, None)}
    assert suppressed_count(ert) == 0
    reason = pause_reason(ert, rid)
    assert refusal[:40] in reason and f"mailer releases resume {rid}" in reason
    smtp.reset()
    with transaction(ert.sessions) as session:
        workflow.resume(session, rid, actor="staff@example.com", now=ert.clock())
    await run_once(ert)
    assert release_status(ert, rid) == "sent"
    assert smtp.duplicates() == [] and sorted(a.recipient for a in smtp.accepted) == emails


async def test_dmarc_refusal_after_the_data_is_our_fault_too(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """A DMARC refusal of the message data pauses at once and requeues the row; nobody fails."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=1)
    add_contacts(ert, tmp_path, ["a@example.com", "b@example.com", "c@example.com"])
    rid = approved_release(ert, EVERYONE)
    for e in ("a@example.com", "b@example.com", "c@example.com"):
        smtp.fail_data(e, "550 5.7.26 Unauthenticated email from example.org is not accepted due to DMARC policy")
    await run_once(ert)
    rows = deliveries(ert, rid)
    assert release_status(ert, rid) == "paused" and "DMARC" in pause_reason(ert, rid)
    assert sorted(r.status for r in rows.values()) == ["queued", "queued", "queued"]
    assert suppressed_count(ert) == 0


async def test_temporary_refusal_of_our_sender_defers_and_the_breaker_counts_it(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """450 at MAIL FROM (no reverse DNS): rows deferred, never failed; five in a row pause the release."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=1, breaker__streak=5)
    add_contacts(ert, tmp_path, [f"t{i:02d}@example.com" for i in range(20)])
    rid = approved_release(ert, EVERYONE)
    smtp.fail_mail("450 4.7.1 Client host rejected: cannot find your reverse hostname", times=None)
    await run_once(ert)
    counts = release_report_counts(ert, rid)
    assert release_status(ert, rid) == "paused"
    assert counts == {"deferred": 5, "queued": 15}
    assert "reverse hostname" in pause_reason(ert, rid)


def release_report_counts(rt: Runtime, release_id: int) -> dict[str, int]:
    with transaction(rt.sessions) as session:
        return dict(release_report(session, release_id).counts)


async def test_relay_refusing_58_percent_with_5_7_1_pauses(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """7 in 12 recipients refused with 5.7.1 at RCPT, never 3 in a row: the rate trips the breaker
    within the first window; refused rows are deferred, nobody failed or suppressed."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=2, retry__batch_size=200)
    add_contacts(ert, tmp_path, [f"p{i:03d}@example.com" for i in range(200)])
    rid = approved_release(ert, EVERYONE)
    plan(ert)
    for i, e in enumerate(ids_in_order(ert, rid)):
        if (i * 7) % 12 < 7:
            smtp.rcpt_reply[e] = "550 5.7.1 Delivery not authorized, message refused"
    await run_once(ert)
    assert release_status(ert, rid) == "paused"
    counts = release_report_counts(ert, rid)
    assert counts.get("failed", 0) == 0 and suppressed_count(ert) == 0
    assert counts["deferred"] + counts["sent"] <= 25
    assert "of the last" in pause_reason(ert, rid) and "5.7.1" in pause_reason(ert, rid)


async def test_breaker_counts_refusals_of_every_worker(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Two workers each see fewer than five 5.7.1 refusals in a row; together they reach five
    and the second worker pauses the release at its second refusal (shared state on the release)."""
    ert = engine_runtime(rt, smtp.port, Clock(), smtp__pool_size=1, retry__batch_size=3, breaker__streak=5)
    emails = [f"w{i:02d}@example.com" for i in range(12)]
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    for e in emails:
        smtp.rcpt_reply[e] = "550 5.7.1 Delivery not authorized, message refused"
    plan(ert)
    first = Dispatcher(ert, make_transport(ert.settings.smtp), owner="worker-a")
    second = Dispatcher(ert, make_transport(ert.settings.smtp), owner="worker-b")
    assert await first.send_batch(rid) == 3
    assert release_status(ert, rid) == "sending"
    assert await second.send_batch(rid) == 3
    await first.transport.close()
    await second.transport.close()
    assert release_status(ert, rid) == "paused"
    assert "5 refusals in a row" in pause_reason(ert, rid)
    assert release_report_counts(ert, rid) == {"deferred": 5, "queued": 7}


async def test_policy_refused_rows_are_retried_after_resume_and_fail_only_at_give_up(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Rows refused with 5.7.1 before the pause are deferred, sent after resume once the relay
    relents; a row refused on every retry (not new evidence for the breaker) fails at give-up
    without being suppressed or pausing the release again."""
    clock = Clock()
    ert = engine_runtime(
        rt, smtp.port, clock, smtp__pool_size=1, breaker__streak=3, retry__schedule=[60], retry__give_up_after=600
    )
    emails = [f"g{i:02d}@example.com" for i in range(6)]
    add_contacts(ert, tmp_path, emails)
    rid = approved_release(ert, EVERYONE)
    for e in emails:
        smtp.rcpt_reply[e] = "550 5.7.1 Delivery not authorized, message refused"
    await run_once(ert)
    assert release_status(ert, rid) == "paused"
    refused = sorted(e for e, r in deliveries(ert, rid).items() if r.status == "deferred")
    assert len(refused) == 3
    smtp.rcpt_reply.clear()
    smtp.rcpt_reply[refused[0]] = "550 5.7.1 Delivery not authorized, message refused"
    with transaction(ert.sessions) as session:
        workflow.resume(session, rid, actor="staff@example.com", now=clock())
    for _ in range(12):
        clock.advance(61)
        await run_once(ert)
    rows = deliveries(ert, rid)
    assert (rows[refused[0]].status, rows[refused[0]].reason) == ("failed", "gave up retrying")
    assert {r.status for e, r in rows.items() if e != refused[0]} == {"sent"}
    assert smtp.duplicates() == [] and suppressed_count(ert) == 0
