"""Follow-ups: to the original's sent recipients only, threaded under what each got,
skipping the unsubscribed, the held and — per --only — repliers and kit downloaders
(the reply/download/held signals are the store's functions; other branches fill them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.sql import Select

from mailer.domain.conversations import FollowUpFilter
from mailer.engine.dispatch import Dispatcher
from mailer.releases import threads
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import signals
from mailer.store.db import transaction
from mailer.store.tables import Contact
from tests.support.conversations import EVERYONE, GOT, LEFT, approve, messages_to, sent_original
from tests.support.engine import Clock, add_contacts, approved_release, deliveries, engine_runtime
from tests.support.fake_transport import FakeTransport

FOLLOW_UP = """\
+++
subject = "Following up: the Harbor Institute report"
+++
Did you get a chance to read the report? Our director is available on Tuesday.
"""
OTHER = "other@example.com"


def only(email: str) -> Any:
    """A stand-in store signal that says ``email`` (and nobody else) did it."""

    def contact_ids(*_: object) -> Select[Any]:
        return select(Contact.id).where(Contact.email == email)

    return contact_ids


async def _follow_up(ert: Runtime, original: int, fake: FakeTransport, filt: FollowUpFilter) -> tuple[int, set[str]]:
    with transaction(ert.sessions) as session:
        fid = threads.follow_up(
            session,
            original,
            FOLLOW_UP,
            author="pat",
            renderer=renderer_for(ert.settings),
            settings=ert.settings,
            now=ert.clock(),
            only=filt,
        ).id
    approve(ert, fid)
    before = len(fake.sent)
    await Dispatcher(ert, fake).run_once()
    return fid, set(messages_to(fake, before))


async def test_follow_up_goes_to_sent_recipients_threaded(rt: Runtime, tmp_path: Path) -> None:
    """Only the original's sent rows (not unknown, refused, bounced, or a contact added since);
    the unsubscribed get a suppressed row; each message answers its own original."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    fake = FakeTransport()
    original = await sent_original(ert, tmp_path, fake)
    fid, got = await _follow_up(ert, original, fake, FollowUpFilter.NO_RESPONSE)
    assert got == {GOT}
    assert {a: r.status for a, r in deliveries(ert, fid).items()} == {GOT: "sent", LEFT: "suppressed"}
    message = messages_to(fake, len(fake.sent) - 1)[GOT]
    assert message["In-Reply-To"] == deliveries(ert, original)[GOT].message_id
    assert message["Subject"] == "Following up: the Harbor Institute report"


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        (FollowUpFilter.NO_RESPONSE, {OTHER}),
        (FollowUpFilter.NO_REPLY, {OTHER, "kit@example.com"}),
        (FollowUpFilter.NO_DOWNLOAD, {OTHER, "replied@example.com"}),
    ],
)
async def test_follow_up_skips_repliers_downloaders_and_the_held(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filt: FollowUpFilter, expected: set[str]
) -> None:
    """Whoever the store says replied, downloaded the kit or is held is left out, per --only
    (the held always); they get no row at all."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    fake = FakeTransport()
    add_contacts(ert, tmp_path, [OTHER, "replied@example.com", "kit@example.com", "away@example.com"])

    original = approved_release(ert, EVERYONE)
    await Dispatcher(ert, fake).run_once()
    monkeypatch.setattr(signals, "replied_contact_ids", only("replied@example.com"))
    monkeypatch.setattr(signals, "downloaded_contact_ids", only("kit@example.com"))
    monkeypatch.setattr(signals, "held_contact_ids", only("away@example.com"))
    fid, got = await _follow_up(ert, original, fake, filt)
    assert got == expected
    assert set(deliveries(ert, fid)) == expected
