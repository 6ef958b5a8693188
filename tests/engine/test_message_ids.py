"""Message-IDs expose no sequential id: a random tag of the planning step, then 128
random bits per delivery drawn by the database at planning; stable for the delivery (a
retry reuses it)."""

from __future__ import annotations

import re
from pathlib import Path

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from tests.support.engine import Clock, Variant, add_contacts, approved_release, deliveries, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer

# The Message-ID domain defaults to the client's From domain (its own identity).
SHAPE = re.compile(r"<m\.([0-9a-f]{8})\.([0-9a-f]{32})@harbor\.example\.org>")


async def test_message_ids_are_random_and_stable(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Two releases to the same people: every Message-ID is a step tag and 128 random bits,
    none shared or derived from ids; a deferred recipient's retry carries the Message-ID of
    its first attempt."""
    clock = Clock()
    ert = engine_runtime(rt, smtp.port, clock, paths__data_dir=tmp_path / "data")
    people = [f"p{i}@example.com" for i in range(6)]
    add_contacts(ert, tmp_path, people)
    smtp.fail_rcpt("p3@example.com", "452 4.2.2 Mailbox full, try later")
    first = approved_release(ert, [Variant("press-all", "list:press")])
    second = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    planned = {rid: {e: r.message_id for e, r in deliveries(ert, rid).items()} for rid in (first, second)}
    ids = [m for rows in planned.values() for m in rows.values()]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert all(SHAPE.fullmatch(m) for m in ids), ids
    parts = [SHAPE.fullmatch(m).groups() for m in ids]  # type: ignore[union-attr]
    assert (
        len({random[:8] for _, random in parts}) == 12
    )  # no shared prefix that a counter or a hash of ids would leave
    # one tag per planning step (each release planned in one step here), drawn afresh
    assert len({tag for tag, _ in parts}) == 2

    clock.advance(3600)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    retried = [a for a in smtp.accepted if a.recipient == "p3@example.com"]
    assert sorted(a.message_id or "" for a in retried) == sorted(planned[rid]["p3@example.com"] for rid in planned)
    assert {rid: {e: r.message_id for e, r in deliveries(ert, rid).items()} for rid in planned} == planned
