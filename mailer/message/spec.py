"""What a message is made from: the variant spec, the sender, a recipient, one message's
:class:`RenderJob`; what rendering gives back (:class:`Rendered`: the bytes of a message
and/or its :class:`RenderedParts`); and :class:`Variant`, the face every compiled variant
shows.

Plain frozen values: they cross into the render process (:mod:`mailer.message.worker`)
by pickling, and a spec is hashed there to find its compiled form.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


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
    """A person available for interview (media advisory). ``bio`` may hold several
    paragraphs (blank lines between them) and single line breaks (kept)."""

    name: str
    title: str
    bio: str

    @property
    def paragraphs(self) -> tuple[tuple[str, ...], ...]:
        """The bio as paragraphs of lines (see :func:`paragraphs`)."""
        return paragraphs(self.bio)


def paragraphs(text: str | None) -> tuple[tuple[str, ...], ...]:
    """``text`` split into paragraphs at blank lines, each a tuple of its lines (single
    line breaks are kept, not merged); empty text gives ()."""
    if not text:
        return ()
    blocks: list[tuple[str, ...]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = tuple(line.strip() for line in block.split("\n") if line.strip())
        if lines:
            blocks.append(lines)
    return tuple(blocks)


@dataclass(frozen=True)
class SpeakerGroup:
    """A heading ("Speakers available", "Other speakers available") and its speakers
    (bios optional)."""

    heading: str
    speakers: tuple[Speaker, ...]


@dataclass(frozen=True)
class RelatedLink:
    """A related article or document: its title and https URL."""

    title: str
    url: str


@dataclass(frozen=True)
class Booking:
    """Whom journalists contact to book an interview; the templates link ``email``
    (mailto:) and ``phone`` (tel:)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    note: str | None = None

    @property
    def tel(self) -> str:
        """``phone`` as a tel: URI body (digits and a leading +, RFC 3966)."""
        phone = self.phone or ""
        digits = "".join(ch for ch in phone if ch.isdigit())
        return ("+" if phone.strip().startswith("+") else "") + digits


@dataclass(frozen=True)
class KitAsset:
    """A photo or document of the release's press kit, as messages link it (the bytes
    stay in the asset storage; ``sha256`` binds an approval to them)."""

    id: int
    kind: str  # "image" or "document"
    filename: str
    content_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    caption: str | None = None
    alt: str | None = None
    attached: bool = False


@dataclass(frozen=True)
class Attachment:
    """A small document that travels inside every message (base64 of its bytes)."""

    filename: str
    content_type: str
    data_b64: str


@dataclass(frozen=True, kw_only=True)
class VariantSpec:
    """Everything that determines the message bytes except the per-recipient fields.

    ``subject``, ``intro`` and ``body_markdown`` are user-authored Jinja templates (the
    body and intro are Markdown); every other string is data and is never evaluated.
    ``about`` is the optional "About <client>" boilerplate, Markdown without Jinja.
    ``speaker_groups``, ``questions_heading``, ``related``, ``booking`` and
    ``disclosure_placement`` ("footer", or "block": the client's disclosure also stands
    in a conspicuous block above the body) came later (issue 21): at their defaults
    they are left out of the fingerprint.
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
    #: the inbox preview line (data, not a template); None: the body's first sentence
    preheader: str | None = None
    speaker_groups: tuple[SpeakerGroup, ...] = ()
    questions_heading: str | None = None
    related: tuple[RelatedLink, ...] = ()
    booking: Booking | None = None
    disclosure_placement: str = "footer"
    #: the embargo's lift (ISO 8601, UTC) and the zone it was written in: each recipient
    #: sees it in their own zone and in UTC (``embargo`` then is per recipient), in the
    #: subject prefix and at the top of both parts (:mod:`mailer.domain.embargo`)
    embargo_at: str | None = None
    embargo_zone: str | None = None
    #: the press kit; its links start with ``site_url`` + ``newsroom_path`` (the release's
    #: newsroom page, e.g. ``/newsroom/acme/12``), see :mod:`mailer.message.kit`
    assets: tuple[KitAsset, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    site_url: str | None = None
    newsroom_path: str | None = None


@dataclass(frozen=True)
class Recipient:
    """One journalist. Empty name/outlet fields render as missing (see module doc)."""

    email: str
    first_name: str = ""
    last_name: str = ""
    outlet: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: the contact's IANA time zone ("" when unknown): where an embargo is shown in
    timezone: str = ""


@dataclass(frozen=True)
class RenderedParts:
    """The rendered subject (decoded), text/plain body and text/html body of a message."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderJob:
    """One message to render. Without ``message_id`` only the parts are rendered (a
    preview whose unsubscribe link cannot be real); with ``parts`` both."""

    recipient: Recipient
    to_addr: str
    unsubscribe_url: str
    message_id: str | None = None
    unsubscribe_mailto: str | None = None
    date: datetime | None = None
    parts: bool = False
    #: this message's own Reply-To (a tokenized reply address), instead of the sender's
    reply_to: str | None = None
    #: the Message-ID this message answers (a correction, withdrawal or follow-up):
    #: written as ``In-Reply-To`` and ``References`` (RFC 5322 section 3.6.4)
    in_reply_to: str | None = None
    #: the delivery's signed kit token (its downloads and "View online" link), and the
    #: release's (what shows the kit's images before the embargo lifts); None in previews
    kit_token: str | None = None
    release_token: str | None = None
    #: sign the message with this DKIM key, as (key file, selector, domain), where it is
    #: rendered (the render process: issue 20, off the sending event loop)
    dkim: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Rendered:
    """What a job gave: the message bytes and/or the parts, as the job asked."""

    data: bytes | None
    parts: RenderedParts | None


class Variant(ABC):
    """A variant ready to render: :class:`~mailer.message.mime.CompiledVariant` in this
    process, or :class:`~mailer.message.isolated.IsolatedVariant` in the render process.
    Both implement :meth:`run`; :meth:`render` and :meth:`render_parts` are its two uses."""

    spec: VariantSpec

    @abstractmethod
    def run(self, job: RenderJob) -> Rendered:
        """Render what ``job`` asks (see :class:`RenderJob`). Raises what :meth:`render` raises."""

    def render(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        message_id: str,
        unsubscribe_url: str,
        unsubscribe_mailto: str | None,
        date: datetime,
        kit_token: str | None = None,
        release_token: str | None = None,
    ) -> bytes:
        """The complete message, CRLF line ends, ready for SMTP DATA (before dot-stuffing).

        ``message_id`` is used as given (angle brackets added if missing) and also seeds
        the MIME boundary, so the same arguments always give the same bytes.
        Raises :class:`~mailer.domain.errors.HeaderInjectionError` for a CR/LF/control
        character in a recipient field, address, Message-ID or rendered subject;
        :class:`~mailer.domain.errors.InputError` for a non-https unsubscribe URL or a
        non-ASCII address; :class:`~mailer.domain.errors.TemplateError` when a template
        fails at render time (in the render process also
        :class:`~mailer.message.limits.RenderLimitError`).
        """
        job = RenderJob(
            rcpt,
            to_addr,
            unsubscribe_url,
            message_id,
            unsubscribe_mailto,
            date,
            kit_token=kit_token,
            release_token=release_token,
        )
        data = self.run(job).data
        assert data is not None
        return data

    def render_parts(
        self,
        rcpt: Recipient,
        *,
        to_addr: str,
        unsubscribe_url: str,
        message_id: str | None = None,
        unsubscribe_mailto: str | None = None,
        date: datetime | None = None,
        kit_token: str | None = None,
        release_token: str | None = None,
    ) -> RenderedParts:
        """Render subject, text and HTML for previews, with the same checks as :meth:`render`.

        ``message_id``, ``unsubscribe_mailto`` and ``date`` are accepted (and ignored) so
        that callers can pass the same keywords as to :meth:`render`.
        Raises TemplateError, HeaderInjectionError.
        """
        job = RenderJob(rcpt, to_addr, unsubscribe_url, kit_token=kit_token, release_token=release_token)
        parts = self.run(job).parts
        assert parts is not None
        return parts
