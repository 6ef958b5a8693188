"""Topic preferences: a journalist keeps some beats and drops others on the preference page;
releases that name a dropped topic leave them out (at planning and at claim time)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.domain.errors import InputError
from mailer.engine.dispatch import Dispatcher
from mailer.message import Renderer
from mailer.message.tokens import Tokens
from mailer.releases.plan import build_send_plan
from mailer.releases.source import parse_release
from mailer.runtime import Runtime
from mailer.smtp.pool import SmtpPool
from mailer.store.db import transaction
from mailer.store.suppressions import suppression_scopes
from mailer.store.tables import Approval, Release, SuppressionLog
from mailer.web import create_app
from tests.support.constants import FIXED_NOW, TEMPLATES
from tests.support.engine import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer

RELEASE = """+++
title = "T"
client = "c"
subject = "S"
template = "press_release"
segments = ["s"]
topics = {topics}
+++
Body.
"""


def set_topics(rt: Runtime, release_id: int, topics: list[str]) -> None:
    """Give an approved test release topics and re-approve its new content hash."""
    with transaction(rt.sessions) as session:
        release = session.get(Release, release_id)
        assert release is not None
        release.extra = {**(release.extra or {}), "topics": topics}
        session.flush()
        plan = build_send_plan(session, release_id, Renderer(TEMPLATES), rt.settings)
        approval = session.scalar(select(Approval).where(Approval.release_id == release_id))
        assert approval is not None
        approval.content_hash = plan.content_hash


async def send(rt: Runtime) -> None:
    pool = SmtpPool(rt.settings.smtp)
    await Dispatcher(rt, pool).run_once()
    await pool.close()


def test_front_matter_topics_are_checked() -> None:
    """topics must be a list of lower-case beat names; duplicates collapse."""
    assert parse_release(RELEASE.format(topics='["foreign-policy", "foreign-policy"]')).topics == ("foreign-policy",)
    with pytest.raises(InputError, match=r"^topics:"):
        parse_release(RELEASE.format(topics='["Foreign Policy"]'))
    with pytest.raises(InputError, match=r"^topics:"):
        parse_release(RELEASE.format(topics='"politics"'))


async def test_preference_page_drops_a_topic_and_releases_about_it_skip_the_journalist(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Drop foreign-policy, keep politics: a foreign-policy release leaves the journalist out,
    a release without topics still reaches them; choosing the topic again takes it back."""
    ert = engine_runtime(rt, smtp.port, Clock(), web__base_url="https://news.example.com")
    add_contacts(ert, tmp_path, ["dana@example.com", "lee@example.com"], beat="foreign-policy|politics")
    first = approved_release(ert, [Variant("press-all", "list:press")])
    await send(ert)
    dana = deliveries(ert, first)["dana@example.com"]
    token = Tokens.from_settings(ert.settings).unsubscribe(dana.id)
    with TestClient(create_app(ert.settings, clock=lambda: FIXED_NOW), follow_redirects=False) as web:
        page = web.get(f"/u/{token}")
        assert page.status_code == 200
        assert 'value="foreign-policy"' in page.text and 'value="politics"' in page.text
        saved = web.post(f"/u/{token}", data={"choice": "topics", "keep": ["politics"]})
        assert saved.status_code == 200 and "foreign policy" in saved.text
        with transaction(ert.sessions) as session:
            assert suppression_scopes(session, [dana.email_hash]) == {dana.email_hash: {"topic:foreign-policy"}}

        smtp.reset()
        about_fp = approved_release(ert, [Variant("press-all", "list:press")], subject="About foreign policy")
        set_topics(ert, about_fp, ["foreign-policy"])
        await send(ert)
        assert deliveries(ert, about_fp)["dana@example.com"].status == "suppressed"
        assert {a.recipient for a in smtp.accepted} == {"lee@example.com"}

        smtp.reset()
        untagged = approved_release(ert, [Variant("press-all", "list:press")], subject="Untagged")
        await send(ert)
        assert deliveries(ert, untagged)["dana@example.com"].status == "sent"

        web.post(f"/u/{token}", data={"choice": "topics", "keep": ["politics", "foreign-policy"]})
        with transaction(ert.sessions) as session:
            assert suppression_scopes(session, [dana.email_hash]) == {}
            log = session.scalars(select(SuppressionLog)).all()
            assert [(entry.scope, entry.actor) for entry in log] == [("topic:foreign-policy", "recipient")]


async def test_topic_dropped_during_a_send_is_honored_at_claim(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """A topic opt-out recorded after planning still stops the rows not yet claimed."""
    ert = engine_runtime(rt, smtp.port, Clock(), retry__batch_size=2, web__base_url="https://news.example.com")
    emails = [f"t{i}@example.com" for i in range(6)]
    add_contacts(ert, tmp_path, emails, beat="energy")
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    set_topics(ert, rid, ["energy"])
    pool = SmtpPool(ert.settings.smtp)
    dispatcher = Dispatcher(ert, pool)
    dispatcher.plan_due()
    await dispatcher.send_batch(rid)
    late = next(e for e, r in deliveries(ert, rid).items() if r.status == "queued")
    with TestClient(create_app(ert.settings, clock=lambda: FIXED_NOW)) as web:
        token = Tokens.from_settings(ert.settings).unsubscribe(deliveries(ert, rid)[late].id)
        assert web.post(f"/u/{token}", data={"choice": "topics"}).status_code == 200
    await dispatcher.run_once()
    await pool.close()
    assert deliveries(ert, rid)[late].status == "suppressed"
    assert smtp.copies_of(late) == 0
    assert len(smtp.accepted) == 5
