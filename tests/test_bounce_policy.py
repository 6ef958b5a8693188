"""The bounce policy as a pure function: what one notice does to its delivery."""

from __future__ import annotations

import pytest

from mailer.bounces.policy import BounceOutcome, Decision, decide, overall, reply_code
from mailer.bounces.report import Kind, classified
from mailer.domain.states import SuppressionReason

ADDRESS = "dana@example.org"


def _failed(status: str, diagnostic: str) -> Decision | None:
    return decide(Kind.BOUNCE, classified(ADDRESS, "failed", status, diagnostic), suppress_hard=True)


def test_hard_bounce_marks_and_suppresses() -> None:
    """A dead address (5.1.1 user unknown) is marked bounced and suppressed everywhere."""
    assert _failed("5.1.1", "smtp; 550 5.1.1 user unknown") == Decision(
        "bounced", BounceOutcome.BOUNCED, mark_bounced=True, suppress=SuppressionReason.HARD_BOUNCE
    )


def test_hard_bounce_without_suppress_hard_only_marks() -> None:
    """With suppress_hard off, a hard bounce marks the delivery and suppresses nobody."""
    recipient = classified(ADDRESS, "failed", "5.1.1", "smtp; 550 5.1.1 user unknown")
    decision = decide(Kind.BOUNCE, recipient, suppress_hard=False)
    assert decision == Decision("bounced", BounceOutcome.BOUNCED, mark_bounced=True)


def test_sender_fault_pauses_and_spares_the_recipient() -> None:
    """A refusal of our sender pauses the release; the address is neither scored nor suppressed."""
    decision = _failed("5.1.8", "smtp; 553 5.1.8 Domain of sender address bounces@example.com does not exist")
    assert decision is not None
    assert (decision.outcome, decision.pause_release, decision.suppress, decision.score) == (
        BounceOutcome.SENDER_REFUSED,
        True,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("status", "diagnostic", "scored"),
    [
        ("5.2.2", "smtp; 552 5.2.2 mailbox full", True),
        ("5.7.1", "smtp; 550 5.7.1 message refused", False),
        ("5.3.4", "smtp; 552 5.3.4 message too big for system", False),
    ],
)
def test_soft_bounce_scored_only_when_about_the_address(status: str, diagnostic: str, scored: bool) -> None:
    """A soft bounce counts toward the score unless it is about policy or the message."""
    decision = _failed(status, diagnostic)
    assert decision is not None
    assert (decision.outcome, decision.mark_bounced, decision.score) == (BounceOutcome.BOUNCED, True, scored)


def test_feedback_kinds_and_non_failures() -> None:
    """A complaint suppresses, other feedback and delays only record, a delivered block asks nothing."""
    assert decide(Kind.COMPLAINT, None, suppress_hard=True) == Decision(
        "complained", BounceOutcome.COMPLAINT, suppress=SuppressionReason.COMPLAINT
    )
    assert decide(Kind.FEEDBACK, None, suppress_hard=True) == Decision("feedback", BounceOutcome.FEEDBACK)
    delayed = classified(ADDRESS, "delayed", "4.2.2", "smtp; 452 4.2.2 mailbox full")
    assert decide(Kind.DELAY, delayed, suppress_hard=True) == Decision("delayed", BounceOutcome.DELAYED)
    delivered = classified(ADDRESS, "delivered", "2.0.0", None)
    assert decide(Kind.NOT_BOUNCE, delivered, suppress_hard=True) is None
    assert decide(Kind.BOUNCE, None, suppress_hard=True) is None


def test_overall_outcome_and_reply_code() -> None:
    """The weightiest recorded outcome names a message; the quoted reply code wins over the status class."""
    assert overall([BounceOutcome.DELAYED, BounceOutcome.COMPLAINT]) is BounceOutcome.COMPLAINT
    assert overall([BounceOutcome.DUPLICATE, BounceOutcome.IGNORED]) is BounceOutcome.DUPLICATE
    assert overall([]) is BounceOutcome.IGNORED
    assert reply_code("5.1.1", "smtp; 554 5.1.1 no") == 554
    assert reply_code("4.2.2", None) == 400
