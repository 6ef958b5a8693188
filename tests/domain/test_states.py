"""The release state machine's tables: what each state allows, and the one writer of status."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.domain.errors import WorkflowError
from mailer.domain.states import ReleaseAction, ReleaseStatus, allowed_actions, release_can_move
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Release, ReleaseEvent
from tests.support.constants import FIXED_NOW
from tests.support.engine import Variant, add_contacts, approved_release


def test_each_action_matches_a_legal_move() -> None:
    """Every action offered in a state is a move the transition table allows."""
    target = {
        ReleaseAction.SUBMIT: ReleaseStatus.SUBMITTED,
        ReleaseAction.APPROVE: ReleaseStatus.APPROVED,
        ReleaseAction.PAUSE: ReleaseStatus.PAUSED,
        ReleaseAction.RESUME: ReleaseStatus.SENDING,
        ReleaseAction.CANCEL: ReleaseStatus.CANCELLED,
    }
    for status in ReleaseStatus:
        for action in allowed_actions(status):
            if action in target:
                assert release_can_move(status, target[action]), (status, action)


def test_retry_needs_a_retryable_delivery_when_counts_are_known() -> None:
    """A sent release offers retry only while some delivery is unknown, failed or deferred."""
    assert ReleaseAction.RETRY in allowed_actions(ReleaseStatus.SENT)
    assert ReleaseAction.RETRY not in allowed_actions(ReleaseStatus.SENT, {"sent": 30})
    assert ReleaseAction.RETRY in allowed_actions(ReleaseStatus.PARTIAL, {"sent": 29, "unknown": 1})
    assert ReleaseAction.RETRY in allowed_actions(ReleaseStatus.SENDING, {"deferred": 2})


def test_finished_and_cancelled_releases_offer_no_edit_or_cancel() -> None:
    """Nothing but retry is offered once a release has gone out; nothing at all once cancelled."""
    assert allowed_actions(ReleaseStatus.CANCELLED) == frozenset()
    assert allowed_actions(ReleaseStatus.SENT, {"failed": 1}) == frozenset({ReleaseAction.RETRY})
    assert ReleaseAction.RESUME in allowed_actions(ReleaseStatus.PAUSED)
    assert ReleaseAction.RESUME not in allowed_actions(ReleaseStatus.APPROVED)
    assert ReleaseAction.APPROVE in allowed_actions(ReleaseStatus.SUBMITTED)


def test_workflow_move_is_guarded_and_records_history(rt: Runtime, tmp_path: Path) -> None:
    """Two workers racing to pause one sending release: one wins, one event is written."""
    add_contacts(rt, tmp_path, ["ann@example.com"])
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    with transaction(rt.sessions) as session:
        assert workflow.try_move(
            session, rid, ReleaseStatus.APPROVED, ReleaseStatus.PLANNING, actor="w1", now=FIXED_NOW, note="planning"
        )
        assert workflow.try_move(
            session, rid, ReleaseStatus.PLANNING, ReleaseStatus.SENDING, actor="w1", now=FIXED_NOW, note="planned"
        )
    with transaction(rt.sessions) as session:
        first = workflow.try_move(
            session, rid, ReleaseStatus.SENDING, ReleaseStatus.PAUSED, actor="w1", now=FIXED_NOW, note="breaker"
        )
        second = workflow.try_move(
            session, rid, ReleaseStatus.SENDING, ReleaseStatus.PAUSED, actor="w2", now=FIXED_NOW, note="breaker"
        )
    assert (first, second) == (True, False)
    with transaction(rt.sessions) as session:
        release = session.get(Release, rid)
        assert release is not None and release.status == "paused" and release.pause_reason == "breaker"
        moves = [(e.from_status, e.to_status, e.actor) for e in session.scalars(select(ReleaseEvent))]
        assert moves[-3:] == [
            ("approved", "planning", "w1"),
            ("planning", "sending", "w1"),
            ("sending", "paused", "w1"),
        ]
        with pytest.raises(WorkflowError):
            workflow.move(session, rid, ReleaseStatus.SUBMITTED, actor="x", now=FIXED_NOW)


def test_queued_rows_make_retry_useful_only_after_the_release_finished() -> None:
    """Queued rows go anyway while sending; after the release finished only a retry sends them."""
    assert ReleaseAction.RETRY not in allowed_actions(ReleaseStatus.SENDING, {"queued": 40, "sent": 10})
    assert ReleaseAction.RETRY not in allowed_actions(ReleaseStatus.PAUSED, {"queued": 40})
    assert ReleaseAction.RETRY in allowed_actions(ReleaseStatus.SENT, {"queued": 1, "sent": 49})
