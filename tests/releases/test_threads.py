"""Corrections and withdrawals: exactly who may hold the original, threaded under the
message each of them got, the original's pending rows cancelled (both databases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.engine.dispatch import Dispatcher
from mailer.releases import threads, workflow
from mailer.releases.authoring import update_release
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.conversations import (
    CORRECTION,
    EVERYONE,
    GOT,
    MAYBE,
    approve,
    messages_to,
    sent_original,
)
from tests.support.engine import Clock, add_contacts, approved_release, deliveries, engine_runtime, release_status
from tests.support.fake_transport import FakeTransport


def runtime(rt: Runtime, **overrides: object) -> Runtime:
    return engine_runtime(rt, 25, Clock(), smtp__pool_size=1, **overrides)


async def test_correction_reaches_exactly_sent_and_unknown_threaded(rt: Runtime, tmp_path: Path) -> None:
    """A correction goes to the original's sent + unknown rows only (not the refused, the bounced,
    the unsubscribed or a contact added since), each In-Reply-To its own original Message-ID."""
    ert = runtime(rt)
    fake = FakeTransport()
    original = await sent_original(ert, tmp_path, fake)
    with transaction(ert.sessions) as session:
        correction = threads.correct(
            session,
            original,
            CORRECTION,
            author="pat",
            renderer=renderer_for(ert.settings),
            settings=ert.settings,
            now=ert.clock(),
        )
        cid = correction.id
        assert (correction.parent_id, correction.kind) == (original, "correction")
        assert correction.subject == "CORRECTION: Harbor Institute report: corrected figures"
        assert correction.template == "press_release"
    approve(ert, cid)
    before = len(fake.sent)
    await Dispatcher(ert, fake).run_once()
    got = messages_to(fake, before)
    assert sorted(got) == sorted([GOT, MAYBE])
    originals = deliveries(ert, original)
    for address, message in got.items():
        assert message["In-Reply-To"] == originals[address].message_id
        assert message["References"] == originals[address].message_id
        assert message["Subject"] == "CORRECTION: Harbor Institute report: corrected figures"
        assert message["Message-ID"] != originals[address].message_id
    rows = deliveries(ert, cid)
    assert {a: r.status for a, r in rows.items()} == {GOT: "sent", MAYBE: "sent", "left@example.com": "suppressed"}
    assert release_status(ert, cid) == "sent"


async def test_withdrawal_cancels_queued_rows_of_the_original(rt: Runtime, tmp_path: Path) -> None:
    """A withdrawal of a release still sending cancels its queued rows at once; the withdrawal
    (the note, WITHDRAWN: subject) goes only to those the original reached."""
    ert = runtime(rt, retry__batch_size=2)
    fake = FakeTransport()
    add_contacts(ert, tmp_path, [f"j{i}@example.com" for i in range(5)])
    original = approved_release(ert, EVERYONE)
    dispatcher = Dispatcher(ert, fake)
    dispatcher.plan_due()
    await dispatcher.send_batch(original)  # two sent, three still queued
    dispatcher.release_leases()
    with transaction(ert.sessions) as session:
        withdrawal = threads.withdraw(
            session,
            original,
            "The report was released in error. Please disregard it.",
            author="pat",
            renderer=renderer_for(ert.settings),
            settings=ert.settings,
            now=ert.clock(),
        )
        wid = withdrawal.id
        assert withdrawal.subject.startswith("WITHDRAWN: ")
    statuses = sorted(r.status for r in deliveries(ert, original).values())
    assert statuses == ["cancelled", "cancelled", "cancelled", "sent", "sent"]
    approve(ert, wid)
    before = len(fake.sent)
    await Dispatcher(ert, fake).run_once()
    got = messages_to(fake, before)
    reached = sorted(a for a, r in deliveries(ert, original).items() if r.status == "sent")
    assert sorted(got) == reached
    assert all(m["Subject"].startswith("WITHDRAWN: Harbor Institute report") for m in got.values())
    assert "released in error" in got[reached[0]].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert release_status(ert, original) == "sent"


async def test_only_a_release_that_went_out_can_be_corrected(rt: Runtime, tmp_path: Path) -> None:
    """An approved release not yet started cannot get a correction (edit it instead); a withdrawal needs a note."""
    ert = runtime(rt)
    add_contacts(ert, tmp_path, [GOT])
    original = approved_release(ert, EVERYONE)
    with transaction(ert.sessions) as session, pytest.raises(WorkflowError, match="started sending"):
        threads.correct(
            session,
            original,
            CORRECTION,
            author="pat",
            renderer=renderer_for(ert.settings),
            settings=ert.settings,
            now=ert.clock(),
        )
    with transaction(ert.sessions) as session:
        workflow.try_move(session, original, ReleaseStatus.APPROVED, ReleaseStatus.PLANNING, actor="t", now=ert.clock())
    with transaction(ert.sessions) as session, pytest.raises(InputError, match="--note"):
        threads.withdraw(
            session,
            original,
            "  ",
            author="pat",
            renderer=renderer_for(ert.settings),
            settings=ert.settings,
            now=ert.clock(),
        )


async def test_editing_a_correction_keeps_its_prefix_and_parent(rt: Runtime, tmp_path: Path) -> None:
    """A correction edited with a file that again leaves out client/segments and the prefix keeps both."""
    ert = runtime(rt)
    fake = FakeTransport()
    original = await sent_original(ert, tmp_path, fake)
    renderer = renderer_for(ert.settings)
    with transaction(ert.sessions) as session:
        cid = threads.correct(
            session, original, CORRECTION, author="pat", renderer=renderer, settings=ert.settings, now=ert.clock()
        ).id
    edited = CORRECTION.replace("corrected figures", "corrected figures (v2)")
    with transaction(ert.sessions) as session:
        release = update_release(session, cid, edited, actor="pat", renderer=renderer, now=ert.clock())
        assert release.subject == "CORRECTION: Harbor Institute report: corrected figures (v2)"
        assert (release.parent_id, release.kind) == (original, "correction")
