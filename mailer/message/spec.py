"""What a message is made from: the variant spec, the sender, a recipient; and what
rendering gives back (:class:`RenderedParts`, or the bytes of a message).

Plain frozen values: they cross into the render process (:mod:`mailer.message.isolated`)
by pickling, and a spec is hashed there to find its compiled form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Sender:
    """The client identity a release goes out as.

    ``name``, ``address`` and ``reply_to`` go into headers and must be single-line;
    ``postal_address`` and ``disclosure`` go into the footer of both parts and may span
    lines.
    """

    name: str
    address: str
    reply_to: str | None
    postal_address: str
    disclosure: str | None


@dataclass(frozen=True)
class Speaker:
    """A person available for interview (media advisory)."""

    name: str
    title: str
    bio: str


@dataclass(frozen=True, kw_only=True)
class VariantSpec:
    """Everything that determines the message bytes except the per-recipient fields.

    ``subject``, ``intro`` and ``body_markdown`` are user-authored Jinja templates (the
    body and intro are Markdown); every other string is data and is never evaluated.
    ``about`` is the optional "About <client>" boilerplate, Markdown without Jinja.
    """

    release_key: str
    template: str
    subject: str
    title: str
    dateline: str | None
    intro: str | None
    body_markdown: str
    sender: Sender
    list_id: str
    feedback_id: str
    speakers: tuple[Speaker, ...] = ()
    questions: tuple[str, ...] = ()
    booking_contact: str | None = None
    embargo: str | None = None
    about: str | None = None


@dataclass(frozen=True)
class Recipient:
    """One journalist. Empty name/outlet fields render as missing (see module doc)."""

    email: str
    first_name: str = ""
    last_name: str = ""
    outlet: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedParts:
    """The rendered subject (decoded), text/plain body and text/html body of a message."""

    subject: str
    text: str
    html: str


class Variant(Protocol):
    """A variant ready to render: :class:`~mailer.message.mime.CompiledVariant` in this
    process, or :class:`~mailer.message.isolated.IsolatedVariant` in the render process."""

    @property
    def spec(self) -> VariantSpec: ...

    def render(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        message_id: str,
        unsubscribe_url: str,
        unsubscribe_mailto: str | None,
        date: datetime,
    ) -> bytes: ...

    def render_parts(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        unsubscribe_url: str,
        message_id: str | None = None,
        unsubscribe_mailto: str | None = None,
        date: datetime | None = None,
    ) -> RenderedParts: ...
