"""The newsroom and corrections, withdrawals, follow-ups: the original's page shows each
correction and withdrawal that went out (a withdrawn release says so, with the note),
theirs link back, the list marks withdrawn releases, the feed has the corrections;
follow-ups stay private; nothing shows before the original's embargo lifts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from mailer.engine.dispatch import Dispatcher
from mailer.releases import threads
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Release
from mailer.web import create_app
from tests.support.constants import FIXED_NOW
from tests.support.conversations import CORRECTION, approve, messages_to, sent_original
from tests.support.engine import Clock, engine_runtime
from tests.support.fake_transport import FakeTransport
from tests.support.kit import text_of

ATOM = "{http://www.w3.org/2005/Atom}"
LATER = FIXED_NOW + timedelta(days=1)
NOTE = "The report was sent in error: **do not publish it**."
FOLLOW_UP = """\
+++
subject = "Harbor Institute report: any questions?"
+++
Our researchers are available this week.
"""


class Thread:
    """An original with a sent correction, withdrawal and follow-up, and a draft correction."""

    original: int
    correction: int
    withdrawal: int
    follow_up: int
    draft: int
    follow_up_link: str


async def sent_thread(rt: Runtime, tmp_path: Path) -> tuple[Runtime, Thread]:
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    fake = FakeTransport()
    thread = Thread()
    thread.original = await sent_original(ert, tmp_path, fake)
    renderer = renderer_for(ert.settings)
    common = {"author": "pat", "renderer": renderer, "settings": ert.settings, "now": ert.clock()}
    with transaction(ert.sessions) as session:
        thread.correction = threads.correct(session, thread.original, CORRECTION, **common).id  # type: ignore[arg-type]
        thread.withdrawal = threads.withdraw(session, thread.original, NOTE, **common).id  # type: ignore[arg-type]
        thread.follow_up = threads.follow_up(session, thread.original, FOLLOW_UP, **common).id  # type: ignore[arg-type]
        thread.draft = threads.correct(session, thread.original, CORRECTION, **common).id  # type: ignore[arg-type]
    for rid in (thread.correction, thread.withdrawal, thread.follow_up):
        approve(ert, rid)
    start = len(fake.sent)
    await Dispatcher(ert, fake).run_once()
    follow_ups = [m for m in messages_to(fake, start).values() if "any questions" in str(m["Subject"])]
    assert len(follow_ups) == 1
    found = re.search(r"View online:\s+(\S+)", text_of(follow_ups[0]))
    assert found is not None
    thread.follow_up_link = found.group(1).removeprefix(ert.settings.web.base_url)
    return ert, thread


def web_at(ert: Runtime, now: datetime) -> TestClient:
    return TestClient(create_app(ert.settings, clock=Clock(now)))


async def test_the_original_shows_its_corrections_and_withdrawal(rt: Runtime, tmp_path: Path) -> None:
    """The original's page lists the sent correction and withdrawal at the top (date, subject,
    link), says it was withdrawn with the note; theirs link back; no follow-up, no draft."""
    ert, t = await sent_thread(rt, tmp_path)
    web = web_at(ert, LATER)
    page = web.get(f"/newsroom/harbor/{t.original}").text
    answers = page.split('id="answers"')[1].split("</ul>")[0]
    assert f'href="/newsroom/harbor/{t.correction}"' in answers
    assert "CORRECTION: Harbor Institute report: corrected figures" in answers
    assert f'href="/newsroom/harbor/{t.withdrawal}"' in answers and "Withdrawal" in answers
    assert FIXED_NOW.strftime("%d %B %Y") in answers
    assert f"/newsroom/harbor/{t.follow_up}" not in page and f"/newsroom/harbor/{t.draft}" not in page
    withdrawn = page.split('id="withdrawn"')[1].split("</div></div>")[0]
    assert "WITHDRAWN on" in withdrawn and "<strong>do not publish it</strong>" in withdrawn
    assert page.index('id="withdrawn"') < page.index('id="title"')
    for rid in (t.correction, t.withdrawal):
        own = web.get(f"/newsroom/harbor/{rid}").text
        back = own.split('id="answers-to"')[1].split("</p>")[0]
        assert f'href="/newsroom/harbor/{t.original}"' in back


async def test_the_list_and_feed_show_corrections_but_keep_follow_ups_private(rt: Runtime, tmp_path: Path) -> None:
    """The list marks the original withdrawn; the feed has the correction; the follow-up is in
    neither and its page answers only to its recipient's token."""
    ert, t = await sent_thread(rt, tmp_path)
    web = web_at(ert, LATER)
    listing = web.get("/newsroom/harbor").text
    original = listing.split(f'href="/newsroom/harbor/{t.original}"')[0].rsplit("<li>", 1)[1]
    assert "WITHDRAWN" in original
    correction = listing.split(f'href="/newsroom/harbor/{t.correction}"')[0].rsplit("<li>", 1)[1]
    assert "WITHDRAWN" not in correction
    assert f"/newsroom/harbor/{t.follow_up}" not in listing
    feed = ET.fromstring(web.get("/newsroom/harbor/feed.atom").content)
    ids = {e.findtext(f"{ATOM}id", "").rsplit("/", 1)[1]: e for e in feed.findall(f"{ATOM}entry")}
    assert str(t.correction) in ids and str(t.original) in ids and str(t.follow_up) not in ids
    category = ids[str(t.correction)].find(f"{ATOM}category")
    assert category is not None and category.get("term") == "correction"
    assert web.get(f"/newsroom/harbor/{t.follow_up}").status_code == 404
    assert web.get(t.follow_up_link).status_code == 200


async def test_nothing_of_an_embargoed_original_shows_before_its_lift(rt: Runtime, tmp_path: Path) -> None:
    """The original embargoed until later: its correction and withdrawal (no embargo of their
    own) are not listed, in the feed or public before the lift, and are after it."""
    ert, t = await sent_thread(rt, tmp_path)
    lift = LATER + timedelta(days=2)
    with transaction(ert.sessions) as session:
        session.execute(update(Release).where(Release.id == t.original).values(embargo_at=lift))
    early = web_at(ert, LATER)
    listing = early.get("/newsroom/harbor").text
    feed = early.get("/newsroom/harbor/feed.atom").text
    for rid in (t.original, t.correction, t.withdrawal):
        assert f"/newsroom/harbor/{rid}" not in listing and f"/newsroom/harbor/{rid}<" not in feed
        assert early.get(f"/newsroom/harbor/{rid}").status_code == 404
    late = web_at(ert, lift.astimezone(UTC) + timedelta(minutes=1))
    assert late.get(f"/newsroom/harbor/{t.correction}").status_code == 200
    assert f'href="/newsroom/harbor/{t.withdrawal}"' in late.get(f"/newsroom/harbor/{t.original}").text
