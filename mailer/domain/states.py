"""Vocabulary and rules: states, transitions, contact fields. No I/O.

States are stored as their string values. Transition tables are the only place that
says which moves are legal; code asks :func:`release_can_move` instead of comparing
states by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum

from mailer.domain.errors import WorkflowError

#: The largest row id: ids are 32-bit integer columns (SQLite's are wider, PostgreSQL's
#: are not). A number outside 1..MAX_ID names nothing; the web routes and the command
#: line answer "not found" for it without asking the database (which would fail with an
#: overflow on SQLite, an out-of-range error on PostgreSQL).
MAX_ID = 2**31 - 1


class ReleaseStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    #: started: its deliveries are being planned in steps (mailer.engine.planner) and the
    #: rows planned so far are being sent; it becomes ``sending`` once every step is done
    PLANNING = "planning"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    PARTIAL = "partial"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    BOUNCED = "bounced"
    HELD = "held"  # the contact is away (an out-of-office reply): never sent, with the reason
    #: held back by the firm-wide cadence cap (never sent; the reason says which cap)
    CAPPED = "capped"
    #: never sent: the contact is not trusted with embargoed news (``embargo_ok = false``)
    EXCLUDED = "excluded"


#: Delivery states that no longer need work (the release may finish).
TERMINAL_DELIVERY = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.SUPPRESSED,
        DeliveryStatus.CANCELLED,
        DeliveryStatus.BOUNCED,
        DeliveryStatus.HELD,
        DeliveryStatus.CAPPED,
        DeliveryStatus.EXCLUDED,
    }
)

_RELEASE_MOVES: dict[ReleaseStatus, frozenset[ReleaseStatus]] = {
    ReleaseStatus.DRAFT: frozenset({ReleaseStatus.SUBMITTED, ReleaseStatus.CANCELLED}),
    ReleaseStatus.SUBMITTED: frozenset({ReleaseStatus.APPROVED, ReleaseStatus.DRAFT, ReleaseStatus.CANCELLED}),
    # approved → submitted: approval needed again, the content unchanged (the send time moved
    # earlier, or the rendered bytes changed since approval: issue 21)
    # approved → planning: the engine starts it (checks, fence); its rows are planned in
    # steps, each its own transaction, and sent as they appear
    ReleaseStatus.APPROVED: frozenset(
        {ReleaseStatus.PLANNING, ReleaseStatus.DRAFT, ReleaseStatus.SUBMITTED, ReleaseStatus.CANCELLED}
    ),
    # planning → sending: the last step planned; planning → paused: staff, the breaker,
    # the fence (planning goes on while paused, nothing is claimed)
    ReleaseStatus.PLANNING: frozenset({ReleaseStatus.SENDING, ReleaseStatus.PAUSED, ReleaseStatus.CANCELLED}),
    ReleaseStatus.SENDING: frozenset(
        {
            ReleaseStatus.PAUSED,
            ReleaseStatus.SENT,
            ReleaseStatus.PARTIAL,
            ReleaseStatus.CANCELLED,
        }
    ),
    # paused → planning: resumed before its planning finished
    ReleaseStatus.PAUSED: frozenset({ReleaseStatus.SENDING, ReleaseStatus.PLANNING, ReleaseStatus.CANCELLED}),
    ReleaseStatus.SENT: frozenset({ReleaseStatus.SENDING}),  # staff retry of unknown/failed rows
    ReleaseStatus.PARTIAL: frozenset({ReleaseStatus.SENDING}),
    ReleaseStatus.CANCELLED: frozenset(),
}


def release_can_move(src: ReleaseStatus, dst: ReleaseStatus) -> bool:
    """True when the release state machine allows ``src → dst``."""
    return dst in _RELEASE_MOVES[src]


def require_release_move(src: ReleaseStatus, dst: ReleaseStatus) -> None:
    """Raise :class:`WorkflowError` unless ``src → dst`` is allowed."""
    if not release_can_move(src, dst):
        article = "an" if src.value[0] in "aeiou" else "a"
        raise WorkflowError(f"{article} {src.value} release cannot become {dst.value}")


class ReleaseAction(StrEnum):
    """What a person can do to a release (the CLI, the staff pages and the API all ask
    :func:`allowed_actions`; who may do it is :func:`mailer.accounts.users.permits`)."""

    EDIT = "edit"
    SUBMIT = "submit"
    APPROVE = "approve"
    SCHEDULE = "schedule"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"


#: Delivery states a staff retry may queue again (same Message-ID); ``queued``: rows a
#: notice about our sender put back after the release finished.
RETRYABLE_DELIVERY = frozenset(
    {DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED, DeliveryStatus.DEFERRED, DeliveryStatus.QUEUED}
)

#: Release states whose content can still change (a change after approval needs approval again).
EDITABLE_RELEASE = frozenset({ReleaseStatus.DRAFT, ReleaseStatus.SUBMITTED, ReleaseStatus.APPROVED})

#: Release states whose send time can change.
SCHEDULABLE_RELEASE = frozenset(
    {ReleaseStatus.DRAFT, ReleaseStatus.SUBMITTED, ReleaseStatus.APPROVED, ReleaseStatus.PAUSED}
)

#: Release states that have been approved (what is sent is what was approved).
APPROVED_RELEASE = frozenset(
    {
        ReleaseStatus.APPROVED,
        ReleaseStatus.PLANNING,
        ReleaseStatus.SENDING,
        ReleaseStatus.PAUSED,
        ReleaseStatus.SENT,
        ReleaseStatus.PARTIAL,
    }
)

#: Release states whose rows workers claim and send (``planning``: the rows planned so far).
RUNNING_RELEASE = frozenset({ReleaseStatus.PLANNING, ReleaseStatus.SENDING})


def allowed_actions(status: ReleaseStatus, counts: Mapping[str, int] | None = None) -> frozenset[ReleaseAction]:
    """The actions the state machine allows on a release in ``status``. ``counts``
    (deliveries by status) decides retry: without it, retry is offered wherever the state
    allows it; with it, only when some delivery is in :data:`RETRYABLE_DELIVERY`."""
    moves = _RELEASE_MOVES[status]
    actions: set[ReleaseAction] = set()
    if status in EDITABLE_RELEASE:
        actions.add(ReleaseAction.EDIT)
    if status in SCHEDULABLE_RELEASE:
        actions.add(ReleaseAction.SCHEDULE)
    if status is ReleaseStatus.DRAFT:
        actions.add(ReleaseAction.SUBMIT)
    if status is ReleaseStatus.SUBMITTED:
        actions.add(ReleaseAction.APPROVE)
    if status in RUNNING_RELEASE:
        actions.add(ReleaseAction.PAUSE)
    if status is ReleaseStatus.PAUSED:
        actions.add(ReleaseAction.RESUME)
    if ReleaseStatus.CANCELLED in moves:
        actions.add(ReleaseAction.CANCEL)
    if status in (ReleaseStatus.SENDING, ReleaseStatus.PAUSED) or (
        ReleaseStatus.SENDING in moves and status is not ReleaseStatus.PLANNING
    ):
        # Queued rows of a release still sending go anyway; after it finished they are
        # rows a notice about our sender put back, and only a retry sends them.
        wanted = RETRYABLE_DELIVERY
        if status in (ReleaseStatus.SENDING, ReleaseStatus.PAUSED):
            wanted = RETRYABLE_DELIVERY - {DeliveryStatus.QUEUED}
        retryable = counts is None or any(counts.get(s.value, 0) for s in wanted)
        if retryable and status is not ReleaseStatus.APPROVED:
            actions.add(ReleaseAction.RETRY)
    return frozenset(actions)


class OutletType(StrEnum):
    PRINT = "print"
    TV = "tv"
    RADIO = "radio"
    ONLINE = "online"
    WIRE = "wire"
    PODCAST = "podcast"
    NEWSLETTER = "newsletter"
    MAGAZINE = "magazine"
    BLOG = "blog"
    TRADE = "trade"
    AGENCY = "agency"


#: The outlet types a fresh install accepts (``[contacts] outlet_types`` replaces them).
DEFAULT_OUTLET_TYPES: tuple[str, ...] = tuple(t.value for t in OutletType)


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    ERASED = "erased"
    LEFT = "left"  # a reply said the journalist left the outlet (mailer.inbound)


#: Suppression scope meaning "every client".
GLOBAL_SCOPE = "*"
#: Suppression scopes for a topic a journalist no longer wants ("topic:foreign-policy"),
#: honored by every release that names the topic in its front matter.
TOPIC_PREFIX = "topic:"


def topic_scope(topic: str) -> str:
    return TOPIC_PREFIX + topic


def send_scopes(client_slug: str, topics: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """Every suppression scope that stops a release of ``client_slug`` about ``topics``."""
    return (GLOBAL_SCOPE, client_slug, *(topic_scope(t) for t in topics))


class Role(StrEnum):
    ADMIN = "admin"
    PUBLICIST = "publicist"
    APPROVER = "approver"
    VIEWER = "viewer"


def email_hash(normalized_email: str) -> str:
    """Stable hash of a normalized address; suppressions match on it (and survive erasure)."""
    return hashlib.sha256(normalized_email.encode("utf-8")).hexdigest()


# --- SMTP replies --------------------------------------------------------------------


class Outcome(StrEnum):
    """What one delivery attempt came to."""

    SENT = "sent"
    DEFERRED = "deferred"  # try again later
    FAILED = "failed"  # permanent: do not retry
    UNKNOWN = "unknown"  # the data may have been accepted; never resent automatically


def retry_delay(attempts: int, schedule: list[int]) -> int:
    """Seconds to wait after the ``attempts``-th failed attempt (1-based); the last repeats."""
    if not schedule:
        return 300
    return schedule[min(max(attempts, 1), len(schedule)) - 1]
