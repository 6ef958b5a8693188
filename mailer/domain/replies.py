"""What a reply to a release is (:class:`ReplyKind`), what was done about it
(:class:`ReplyAction`), and the research queue's items. No I/O; the classifier is
:mod:`mailer.inbound.classify`, the actions :mod:`mailer.inbound.act`."""

from __future__ import annotations

from enum import StrEnum


class ReplyKind(StrEnum):
    """The classification of one inbound message about a delivery."""

    HUMAN = "human"  # a person wrote back: the point of a release
    OUT_OF_OFFICE = "out_of_office"  # away, with a return date when the text gives one
    LEFT_OUTLET = "left_outlet"  # no longer at the outlet (maybe with the new outlet or address)
    WRONG_BEAT = "wrong_beat"  # "not my beat", wrong desk
    UNSUBSCRIBE = "unsubscribe"  # "remove me", "unsubscribe"
    AUTOMATIC = "automatic"  # any other automatic mail (ticket systems, receipts, lists)


class ReplyAction(StrEnum):
    """What capturing a reply did (one per reply; undone ones keep theirs and get ``undone_at``)."""

    NONE = "none"
    HELD = "held"  # the contact is held until the return date
    SUPPRESSED_LEFT = "suppressed_left"  # the old address suppressed (reason ``left``) + research item
    TOPIC_PROPOSED = "topic_proposed"  # a topic suppression proposed to staff (research item)
    UNSUBSCRIBED = "unsubscribed"  # suppressed for the release's client, as one-click does


class ResearchKind(StrEnum):
    """An item of the research queue: something a person confirms or dismisses."""

    NEW_ADDRESS = "new_address"  # the journalist moved: confirm the new outlet or address as a contact
    TOPIC = "topic"  # not their beat: confirm a topic suppression


class ResearchStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


#: Kinds that a person wrote (or that speak for one): who "replied" to a release.
PERSONAL_KINDS = frozenset({ReplyKind.HUMAN, ReplyKind.LEFT_OUTLET, ReplyKind.WRONG_BEAT, ReplyKind.UNSUBSCRIBE})
