"""In-data marks on SQLite are made on the event loop when the write lock is free at once
(issue 20, :meth:`mailer.engine.writer.Writer._quick_mark`), and handed to the writer
thread, without waiting, when it is not; PostgreSQL marks always go to the thread."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from mailer.engine.writer import Writer
from mailer.runtime import Runtime
from mailer.store import queue as delivery_queue
from mailer.store.db import transaction
from tests.support.constants import FIXED_NOW
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime, plan_only

LEASE = timedelta(minutes=5)


def leased(rt: Runtime, tmp_path: Path, owner: str) -> tuple[Runtime, list[int]]:
    """Three planned rows, claimed by ``owner``."""
    ert = engine_runtime(rt, 25, Clock(FIXED_NOW))
    add_contacts(ert, tmp_path, ["q0@example.com", "q1@example.com", "q2@example.com"])
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    plan_only(ert, rid)
    with transaction(ert.sessions) as session:
        rows = delivery_queue.claim_batch(
            session, release_id=rid, scopes=("*", "harbor"), owner=owner, now=FIXED_NOW, lease=LEASE, limit=10
        )
    return ert, sorted(r.id for r in rows)


def in_data(rt: Runtime, delivery_id: int) -> bool:
    """Read without taking the write lock (a plain read of the WAL's last commit)."""
    with sqlite3.connect(str(rt.engine.url.database)) as conn:
        row = conn.execute("SELECT in_data FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return bool(row[0])


async def test_a_free_lock_marks_on_the_loop_at_once(rt: Runtime, tmp_path: Path) -> None:
    """SQLite, lock free: the mark is committed before mark_in_data returns; a row another worker holds is refused the same way."""
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's quick marks")
    ert, ids = leased(rt, tmp_path, "w1")
    writer, stranger = Writer(ert, "w1", lease=LEASE), Writer(ert, "w2", lease=LEASE)
    writer.start()
    stranger.start()
    try:
        mine = writer.mark_in_data(ids[0])
        theirs = stranger.mark_in_data(ids[1])
        assert mine.done() and mine.result() is True
        assert in_data(ert, ids[0])
        assert theirs.done() and theirs.result() is False
        assert not in_data(ert, ids[1])
    finally:
        for w in (writer, stranger):
            await w.stop()
            w.close()


async def test_a_held_lock_hands_the_mark_to_the_thread_without_waiting(rt: Runtime, tmp_path: Path) -> None:
    """Another connection holds SQLite's write lock: mark_in_data returns unmarked at once, and the thread commits the mark once the lock is free."""
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's quick marks")
    ert, ids = leased(rt, tmp_path, "w1")
    holder = sqlite3.connect(str(ert.engine.url.database), isolation_level=None)
    writer = Writer(ert, "w1", lease=LEASE)
    writer.start()
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        mark = writer.mark_in_data(ids[2])
        # returned while the lock is still held, long before a wait for it would give up
        assert time.monotonic() - started < ert.settings.database.busy_timeout_ms / 1000 / 10
        assert not mark.done()
        await asyncio.sleep(0.3)
        assert not mark.done() and not in_data(ert, ids[2])
        holder.execute("COMMIT")
        assert await asyncio.wait_for(mark, 30) is True
        assert in_data(ert, ids[2])
    finally:
        holder.close()
        await writer.stop()
        writer.close()


async def test_postgresql_marks_go_to_the_thread(rt: Runtime, tmp_path: Path) -> None:
    """PostgreSQL: a mark is never made on the loop (it would wait a network round trip); the thread commits it."""
    if rt.engine.dialect.name == "sqlite":
        pytest.skip("PostgreSQL")
    ert, ids = leased(rt, tmp_path, "w1")
    writer = Writer(ert, "w1", lease=LEASE)
    writer.start()
    try:
        mark = writer.mark_in_data(ids[0])
        assert not mark.done()
        assert await asyncio.wait_for(mark, 30) is True
    finally:
        await writer.stop()
        writer.close()
