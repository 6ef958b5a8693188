"""Releases that answer an earlier one (corrections, withdrawals, follow-ups) and the
rules of who they reach. No I/O.

A linked release has a ``kind`` and a parent. Its audience is never a segment: it is
the parent's own ledger —

- a **correction** or a **withdrawal** goes to exactly the parent's deliveries that are
  ``sent`` or ``unknown`` (whoever may hold the original), minus anyone suppressed since;
  the parent's still-pending rows are cancelled; never held back by the cadence cap;
- a **follow-up** goes to the parent's ``sent`` deliveries, minus anyone suppressed since,
  held (out of office), and — by its :class:`FollowUpFilter` — who replied and/or who
  downloaded the kit.

Every message is threaded under the message that recipient got from the parent
(``In-Reply-To`` and ``References``: that delivery's Message-ID).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from mailer.domain.states import DeliveryStatus, ReleaseStatus


class ReleaseKind(StrEnum):
    """What a linked release is to its parent (an ordinary release has no kind)."""

    CORRECTION = "correction"
    WITHDRAWAL = "withdrawal"
    FOLLOW_UP = "follow_up"


class FollowUpFilter(StrEnum):
    """Who a follow-up leaves out besides the suppressed and the held: ``no-response``
    (the default) leaves out who replied and who downloaded the kit; ``no-reply`` only who
    replied; ``no-download`` only who downloaded; ``everyone`` nobody more (the
    embargo-lifted note, issue 16)."""

    NO_RESPONSE = "no-response"
    NO_REPLY = "no-reply"
    NO_DOWNLOAD = "no-download"
    EVERYONE = "everyone"

    @property
    def skips_repliers(self) -> bool:
        return self in (FollowUpFilter.NO_RESPONSE, FollowUpFilter.NO_REPLY)

    @property
    def skips_downloaders(self) -> bool:
        return self in (FollowUpFilter.NO_RESPONSE, FollowUpFilter.NO_DOWNLOAD)


#: Release states a correction, withdrawal or follow-up may answer: it has started, so
#: some journalists may hold it.
ANSWERABLE_RELEASE_STATES = frozenset(
    {ReleaseStatus.SENDING, ReleaseStatus.PAUSED, ReleaseStatus.SENT, ReleaseStatus.PARTIAL, ReleaseStatus.CANCELLED}
)

#: The parent's deliveries a correction or withdrawal goes to: whoever may hold it.
MAY_HOLD = (DeliveryStatus.SENT, DeliveryStatus.UNKNOWN)
#: The parent's deliveries a follow-up goes to: whoever we know got it.
GOT_IT = (DeliveryStatus.SENT,)

#: Kinds the cadence cap never holds back (a correction must reach everyone who has the
#: original, however many messages they got this week).
UNCAPPED = frozenset({ReleaseKind.CORRECTION, ReleaseKind.WITHDRAWAL})


def audience_statuses(kind: ReleaseKind) -> tuple[DeliveryStatus, ...]:
    """The parent's delivery states a release of ``kind`` goes to."""
    return GOT_IT if kind is ReleaseKind.FOLLOW_UP else MAY_HOLD


def cancels_parent(kind: ReleaseKind) -> bool:
    """True when creating a release of ``kind`` cancels the parent's pending rows."""
    return kind in UNCAPPED


def can_answer(status: ReleaseStatus) -> bool:
    """A release in ``status`` may get a correction, withdrawal or follow-up: it started."""
    return status in ANSWERABLE_RELEASE_STATES


def capped(kind: str | None) -> bool:
    """True when the cadence cap applies to a release of ``kind`` (None: ordinary)."""
    return kind is None or ReleaseKind(kind) not in UNCAPPED


def prefixed(subject: str, prefix: str) -> str:
    """``subject`` with ``prefix`` in front (once: a subject already starting with it, in
    any case, is kept); an empty prefix changes nothing."""
    prefix = prefix.strip()
    if not prefix or subject.casefold().startswith(prefix.casefold()):
        return subject
    return f"{prefix} {subject}"


def prefix_for(kind: ReleaseKind, prefixes: Mapping[ReleaseKind, str]) -> str:
    """The configured subject prefix of ``kind`` ("" when none)."""
    return prefixes.get(kind, "")
