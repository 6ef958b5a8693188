"""Approval binds to the bytes, not to library versions (issue 21, problem 7): a release
whose content is unchanged but renders to other bytes than approved is not sent and
goes back for approval, and its author and approver are told; matching bytes go."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from mailer.accounts.users import add_user
from mailer.domain.states import Role
from mailer.engine.dispatch import Dispatcher
from mailer.message import Renderer
from mailer.releases.plan import render_digest, variant_specs
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store.db import transaction
from mailer.store.tables import Approval, Notification, ReleaseEvent
from tests.support.constants import FIXED_NOW, TEMPLATES
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime, release_status
from tests.support.faultsmtp import FaultSMTPServer

PEOPLE = ["ann@example.com", "bob@example.net"]


def _setup(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, digest: str | None) -> tuple[Runtime, int]:
    ert = engine_runtime(rt, smtp.port, Clock(), paths__data_dir=tmp_path / "data")
    add_contacts(ert, tmp_path, PEOPLE)
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    with transaction(ert.sessions) as session:
        for email, role in (("author@example.com", Role.PUBLICIST), ("approver@example.com", Role.APPROVER)):
            add_user(session, email, role=role, password=None, now=FIXED_NOW)
        real = render_digest(variant_specs(session, rid, ert.settings), Renderer(TEMPLATES))
        session.execute(update(Approval).where(Approval.release_id == rid).values(render_digest=digest or real))
    return ert, rid


async def test_other_bytes_than_approved_go_back_for_approval(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer
) -> None:
    """Approved digest differs from today's render: nothing sent, back to submitted with the reason, author and approver told."""
    ert, rid = _setup(rt, tmp_path, smtp, "0" * 64)
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert not {a.recipient for a in smtp.accepted} & set(PEOPLE) and release_status(ert, rid) == "submitted"
    with transaction(ert.sessions) as session:
        notes = [e.note or "" for e in session.scalars(select(ReleaseEvent).where(ReleaseEvent.release_id == rid))]
        told = {(n.to_address, n.kind, n.sent_at is not None) for n in session.scalars(select(Notification))}
    assert any("would differ from the one approved" in n and "approval needed again" in n for n in notes)
    # queued with the move and sent by the same run through [smtp] (from [notify].from_address)
    assert told == {
        ("author@example.com", "returned-submitted", True),
        ("approver@example.com", "returned-submitted", True),
    }
    assert {a.sender for a in smtp.accepted} == {"mailer@example.com"}


async def test_the_approved_bytes_are_sent(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """The digest of today's render equals the approved one: the release goes, and the author is told when it finishes."""
    ert, rid = _setup(rt, tmp_path, smtp, None)
    pool = make_transport(ert.settings.smtp)
    for _ in range(3):
        await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert sorted(a.recipient for a in smtp.accepted if a.recipient in PEOPLE) == sorted(PEOPLE)
    assert release_status(ert, rid) == "sent"
    with transaction(ert.sessions) as session:
        told = [(n.to_address, n.kind, n.subject) for n in session.scalars(select(Notification))]
    assert told == [
        ("author@example.com", "finished", f"Release {rid} finished (sent): Annual maritime security report")
    ]
