"""The "embargo lifted" note (issue 16): a follow-up of an embargoed release that went
out, created with the embargo as its send time and a default text naming the newsroom
page, approved like any release, and sent at the lift only to those the release was
sent to (not to a contact added since, nor to the unsubscribed, the bounced or the never
reached)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.domain.embargo import Embargo
from mailer.domain.errors import WorkflowError
from mailer.engine.dispatch import Dispatcher
from mailer.releases import lift_note
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from tests.support.cli import run_json
from tests.support.conversations import EVERYONE, GOT, LEFT, approve, messages_to, sent_original
from tests.support.engine import Clock, approved_release, deliveries, engine_runtime
from tests.support.fake_transport import FakeTransport

#: far enough ahead that the CLI, on the real clock, still sees it in the future
LIFT = datetime(2030, 6, 3, 13, 0, tzinfo=UTC)
EMBARGO = Embargo(LIFT, "America/New_York")


def create_note(ert: Runtime, parent: int, body: str | None = None) -> int:
    with transaction(ert.sessions) as session:
        return lift_note.lift_note(
            session,
            parent,
            body=body,
            author="pat",
            renderer=renderer_for(ert.settings),
            settings=ert.settings,
            now=ert.clock(),
        ).id


async def test_the_note_goes_at_the_lift_to_the_releases_recipients_only(rt: Runtime, tmp_path: Path) -> None:
    """Created as a draft follow-up timed at the embargo; approved; nothing before the lift; then only the sent get it."""
    clock = Clock()
    ert = engine_runtime(rt, 25, clock, smtp__pool_size=1)
    fake = FakeTransport()
    original = await sent_original(ert, tmp_path, fake, embargo=EMBARGO)
    nid = create_note(ert, original)
    with transaction(ert.sessions) as session:
        note = release_store.get_release(session, nid)
        assert (note.status, note.kind, note.parent_id, note.follow_up_filter) == (
            "draft",
            "follow_up",
            original,
            "everyone",
        )
        assert note.send_at == LIFT
        assert note.title == "Embargo lifted: Annual maritime security report"
        page = f"{ert.settings.web.base_url.rstrip('/')}/newsroom/harbor/{original}"
        assert note.body == (
            f"The embargo on \u201cAnnual maritime security report\u201d has lifted; the release is now public at <{page}>.\n"
        )
    approve(ert, nid)
    before = len(fake.sent)
    await Dispatcher(ert, fake).run_once()
    assert len(fake.sent) == before  # not before the lift
    clock.now = LIFT
    await Dispatcher(ert, fake).run_once()
    got = messages_to(fake, before)
    assert set(got) == {GOT}  # not the unknown, refused, bounced, unsubscribed, nor the one added since
    assert {a: r.status for a, r in deliveries(ert, nid).items()} == {GOT: "sent", LEFT: "suppressed"}
    message = got[GOT]
    assert message["Subject"] == "Embargo lifted: Harbor Institute report: embargoed until Tuesday"
    assert message["In-Reply-To"] == deliveries(ert, original)[GOT].message_id
    assert "EMBARGOED" not in message["Subject"]


async def test_a_note_needs_an_embargo_that_has_not_lifted_on_a_release_that_went_out(
    rt: Runtime, tmp_path: Path
) -> None:
    """No embargo, not yet sending, or already lifted: WorkflowError saying which."""
    clock = Clock()
    ert = engine_runtime(rt, 25, clock, smtp__pool_size=1)
    original = await sent_original(ert, tmp_path, FakeTransport(), embargo=EMBARGO)
    waiting = approved_release(ert, EVERYONE, send_at=datetime(2030, 1, 1, tzinfo=UTC), embargo=EMBARGO)
    plain = approved_release(ert, EVERYONE, send_at=datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(WorkflowError, match="has no embargo"):
        create_note(ert, plain)
    with pytest.raises(WorkflowError, match="is approved: an embargo-lifted note goes to those the release was sent"):
        create_note(ert, waiting)
    clock.now = LIFT
    with pytest.raises(WorkflowError, match="lifted at 2030-06-03 13:00 UTC"):
        create_note(ert, original)


async def test_the_cli_creates_it_with_a_body_of_the_authors(rt: Runtime, env: dict[str, str], tmp_path: Path) -> None:
    """`mailer releases lift-note ID --body FILE --json`: the note's id, kind, parent and send time (the embargo)."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    original = await sent_original(ert, tmp_path, FakeTransport(), embargo=EMBARGO)
    (tmp_path / "note.md").write_text("The report is public: <https://harbor.example.org/report>.\n", "utf-8")
    made = run_json("releases", "lift-note", str(original), "--body", str(tmp_path / "note.md"))
    assert isinstance(made, dict)
    assert (made["kind"], made["parent"], made["status"]) == ("follow_up", original, "draft")
    assert made["send_at"] == "2030-06-03T13:00:00+00:00"
    with transaction(rt.sessions) as session:
        assert release_store.get_release(session, made["id"]).body.startswith("The report is public")
