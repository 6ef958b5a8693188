"""Recording a group of results (``record_decisions``, issue 20: written through the
driver): every field of each decision lands on its row and in its event exactly as the
ORM reads it back, on both databases, and rows another worker holds are left alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from mailer.domain.states import DeliveryStatus, send_scopes
from mailer.runtime import Runtime
from mailer.store import queue as delivery_queue
from mailer.store.db import transaction
from mailer.store.queue import Decision
from mailer.store.tables import Delivery, DeliveryEvent
from tests.store.test_claims import LEASE, _planned
from tests.support.constants import FIXED_NOW


def test_recorded_fields_read_back_as_decided(rt: Runtime, tmp_path: Path) -> None:
    """Sent, deferred, failed and a not-attempted row recorded in one group read back field for field; another owner's row is not written."""
    rid, ids = _planned(rt, tmp_path, 5)
    with transaction(rt.sessions) as s:
        claimed = delivery_queue.claim_batch(
            s, release_id=rid, scopes=send_scopes("harbor"), owner="w", now=FIXED_NOW, lease=LEASE, limit=4
        )
        assert [c.id for c in claimed] == ids[:4]
        s.execute(update(Delivery).where(Delivery.id == ids[3]).values(lease_owner="other"))
    later = FIXED_NOW + timedelta(minutes=7, microseconds=123456)
    retry = FIXED_NOW + timedelta(hours=1, seconds=1)
    first = FIXED_NOW + timedelta(seconds=3, microseconds=5)
    decisions = [
        Decision(ids[0], DeliveryStatus.SENT, 250, "2.0.0 Ok: queued", None, None, first, "sent"),
        Decision(ids[1], DeliveryStatus.DEFERRED, 451, "4.7.1 try later", "greylisted", retry, first, "deferred"),
        Decision(
            ids[2], DeliveryStatus.QUEUED, 550, "x" * 1500, "sender", None, None, "requeued", False, "sender: refused"
        ),
        Decision(ids[3], DeliveryStatus.FAILED, 550, "5.1.1 no such user", "hard", None, first, "failed"),
    ]
    with transaction(rt.sessions) as s:
        written = delivery_queue.record_decisions(s, decisions, "w", later)
    assert written == set(ids[:3])
    with transaction(rt.sessions) as s:
        rows = {d.id: d for d in s.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
        events = {e.delivery_id: e for e in s.scalars(select(DeliveryEvent).where(DeliveryEvent.delivery_id.in_(ids)))}
        got = [
            (
                r.status,
                r.last_code,
                r.last_reply,
                r.reason,
                r.next_attempt_at,
                r.first_attempt_at,
                r.sent_at,
                r.attempts,
                r.in_data,
                r.lease_owner,
                r.lease_expires_at,
                r.updated_at,
            )
            for r in (rows[i] for i in ids[:4])
        ]
        assert got[0] == ("sent", 250, "2.0.0 Ok: queued", None, None, first, later, 1, False, None, None, later)
        assert got[1] == (
            "deferred",
            451,
            "4.7.1 try later",
            "greylisted",
            retry,
            first,
            None,
            1,
            False,
            None,
            None,
            later,
        )
        assert got[2] == ("queued", 550, "x" * 1000, "sender", None, None, None, 0, False, None, None, later)
        assert got[3][0] == "sending" and got[3][9] == "other"  # another worker's: untouched
        assert [(events[i].kind, events[i].code, events[i].detail, events[i].at) for i in ids[:3]] == [
            ("sent", 250, "2.0.0 Ok: queued", later),
            ("deferred", 451, "4.7.1 try later", later),
            ("requeued", 550, "sender: refused", later),
        ]
        assert ids[3] not in events
        assert rows[ids[4]].status == "queued"
