"""What is sent: each segment's :class:`VariantSpec`, the content hash, and the send plan
the delivery engine runs from.

The content hash is SHA-256 over, in segment order, each segment's slug and
:func:`mailer.message.fingerprint` of its :class:`VariantSpec` (and the release's topics):
everything that shapes the bytes except the per-recipient fields (and the Date,
Message-ID and unsubscribe token). An approval is bound to it; the engine sends only
when the plan's hash equals the newest approval's (:func:`require_approved_plan`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from mailer.config import Settings
from mailer.domain.embargo import Embargo, parse_embargo
from mailer.domain.errors import InputError, WorkflowError
from mailer.domain.states import APPROVED_RELEASE, ReleaseStatus
from mailer.message import (
    Booking,
    IsolatedRenderer,
    Recipient,
    RelatedLink,
    Renderer,
    RenderLimits,
    Sender,
    Speaker,
    SpeakerGroup,
    Variant,
    VariantSpec,
    fingerprint,
)
from mailer.message.shipped import template_sources
from mailer.message.spec import Attachment, KitAsset
from mailer.releases.compliance import BLANK_RECIPIENT
from mailer.releases.identity import SendingIdentity, identity_for
from mailer.releases.storage import storage_for
from mailer.store import assets as asset_store
from mailer.store import releases as release_store
from mailer.store import reviews as review_store
from mailer.store.tables import Client, Contact, Release, ReleaseAsset, ReleaseSegment

__all__ = [
    "SendPlan",
    "build_send_plan",
    "content_hash",
    "kit_for",
    "newsroom_path",
    "pick_segment",
    "recipient_for",
    "release_content_hash",
    "release_embargo",
    "release_topics",
    "render_digest",
    "render_limits",
    "renderer_for",
    "require_approved_plan",
    "sample_recipient",
    "segment_rule",
    "spec_for",
    "variant_specs",
]


def render_limits(settings: Settings) -> RenderLimits:
    """The ``[render]`` settings as the render process's limits."""
    r = settings.render
    return RenderLimits(
        time_limit=r.time_limit, max_message_bytes=r.max_message_bytes, memory_limit_mb=r.memory_limit_mb
    )


def renderer_for(settings: Settings) -> Renderer:
    """The renderer over the shipped templates and ``settings.paths.templates_dir`` (read
    once, at construction; :func:`mailer.message.shipped.template_sources`); its variants
    compile and render in a render process under ``settings.render``."""
    folder, sources = template_sources(settings.paths.templates_dir)
    return IsolatedRenderer(folder, limits=render_limits(settings), sources=sources)


def release_embargo(release: Release) -> Embargo | None:
    """The release's embargo: its lift (``embargo_at``) and the zone it was written in."""
    if release.embargo_at is None:
        return None
    extra = release.extra or {}
    zone = extra.get("embargo_zone")
    if not zone:  # written before zones were kept: the offset it was written with
        parsed = parse_embargo(extra.get("embargo"))
        zone = parsed.zone if parsed is not None else "UTC"
    return Embargo(release.embargo_at.astimezone(UTC), str(zone))


def kit_for(assets: list[ReleaseAsset], settings: Settings) -> tuple[tuple[KitAsset, ...], tuple[Attachment, ...]]:
    """The release's press kit as messages carry it: every asset (linked), and the bytes of
    those that also travel as attachments (read from the asset storage)."""
    kit = tuple(
        KitAsset(
            id=a.id,
            kind=a.kind,
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            sha256=a.sha256,
            width=a.width,
            height=a.height,
            caption=a.caption,
            alt=a.alt,
            attached=a.attached,
        )
        for a in assets
    )
    storage = storage_for(settings) if any(a.attached for a in assets) else None
    attachments = tuple(
        Attachment(a.filename, a.content_type, base64.b64encode(storage.get(a.storage_key)).decode("ascii"))
        for a in assets
        if a.attached and storage is not None
    )
    return kit, attachments


def newsroom_path(client_slug: str, release_id: int) -> str:
    """The path of a release's newsroom page (its "View online" link and its assets)."""
    return f"/newsroom/{client_slug}/{release_id}"


def _speakers(raw: list[dict[str, str]]) -> tuple[Speaker, ...]:
    return tuple(Speaker(s["name"], s.get("title", ""), s.get("bio", "")) for s in raw)


def spec_for(
    release: Release,
    client: Client,
    row: ReleaseSegment,
    settings: Settings,
    *,
    kit: tuple[tuple[KitAsset, ...], tuple[Attachment, ...]] = ((), ()),
) -> VariantSpec:
    """The VariantSpec of one segment of a release (the release with the segment's
    overrides); ``kit`` from :func:`kit_for`."""
    extra = release.extra or {}
    embargo = release_embargo(release)
    booking = extra.get("booking")
    return VariantSpec(
        release_key=str(release.id),
        template=row.template or release.template,
        subject=row.subject or release.subject,
        title=release.title,
        dateline=extra.get("dateline"),
        intro=row.intro if row.intro is not None else extra.get("intro"),
        body_markdown=row.body if row.body is not None else release.body,
        sender=Sender(client.from_name, client.from_address, client.reply_to, client.postal_address, client.disclosure),
        list_id=f"{client.name} <{client.slug}.{identity_for(client, settings).message_id_domain}>",
        feedback_id=f"{release.id}:{client.slug}:mailer",
        speakers=_speakers(extra.get("speakers", [])),
        questions=tuple(extra.get("questions", [])),
        booking_contact=extra.get("booking_contact"),
        about=extra.get("about"),
        preheader=extra.get("preheader"),
        speaker_groups=tuple(
            SpeakerGroup(g["heading"], _speakers(g.get("speakers", []))) for g in extra.get("speaker_groups", [])
        ),
        questions_heading=extra.get("questions_heading"),
        related=tuple(RelatedLink(r["title"], r["url"]) for r in extra.get("related", [])),
        booking=Booking(**booking) if booking else None,
        disclosure_placement=extra.get("disclosure_placement") or "footer",
        embargo_at=embargo.at.isoformat() if embargo is not None else None,
        embargo_zone=embargo.zone if embargo is not None else None,
        assets=kit[0],
        attachments=kit[1],
        site_url=settings.web.base_url,
        newsroom_path=newsroom_path(client.slug, release.id),
    )


def variant_specs(session: Session, release_id: int, settings: Settings) -> list[tuple[int, str, VariantSpec]]:
    """``(segment_id, segment_slug, spec)`` for each segment of the release, by position.

    Raises NotFoundError for an unknown release.
    """
    release = release_store.get_release(session, release_id)
    client = release_store.get_client_by_id(session, release.client_id)
    kit = kit_for(asset_store.release_assets(session, release_id), settings)
    return [
        (seg.id, seg.slug, spec_for(release, client, row, settings, kit=kit))
        for row, seg in release_store.release_segments(session, release_id)
    ]


def content_hash(specs: list[tuple[int, str, VariantSpec]], renderer: Renderer, topics: tuple[str, ...] = ()) -> str:
    """SHA-256 hex over each segment's slug and the fingerprint of its spec, in order,
    and the release's topics (they decide who is left out).

    Raises TemplateError when a template is missing or does not parse.
    """
    digest = hashlib.sha256()
    if topics:
        digest.update(b"topics\x00" + "\x00".join(topics).encode("utf-8") + b"\n")
    for _, slug, spec in specs:
        digest.update(slug.encode("utf-8") + b"\x00" + fingerprint(spec, renderer).encode("ascii") + b"\n")
    return digest.hexdigest()


#: What the render digest's sample messages carry instead of per-recipient values.
_DIGEST_URL = "https://unsubscribe.invalid/u/digest"
_DIGEST_DATE = datetime(2000, 1, 1, tzinfo=UTC)


def render_digest(specs: list[tuple[int, str, VariantSpec]], renderer: Renderer) -> str:
    """SHA-256 hex over the bytes of one sample message per segment (a recipient with
    every optional field missing, a fixed date, Message-ID and unsubscribe link): what an
    approval saw. The same spec and templates give the same digest unless the code that
    renders them (nh3, Jinja2, css-inline, markdown-it, mailer) changed what it makes.

    Raises TemplateError (and what rendering raises) when a segment does not render.
    """
    digest = hashlib.sha256()
    for _, slug, spec in specs:
        variant = renderer.compile(spec)
        data = variant.render(
            BLANK_RECIPIENT,
            to_addr=BLANK_RECIPIENT.email,
            message_id=f"<digest.{spec.release_key}@invalid>",
            unsubscribe_url=_DIGEST_URL,
            unsubscribe_mailto=None,
            date=_DIGEST_DATE,
        )
        digest.update(slug.encode("utf-8") + b"\x00" + hashlib.sha256(data).hexdigest().encode("ascii") + b"\n")
    return digest.hexdigest()


def release_content_hash(session: Session, release_id: int, renderer: Renderer, settings: Settings) -> str:
    """The content hash of the release as it would be sent now."""
    return content_hash(variant_specs(session, release_id, settings), renderer, release_topics(session, release_id))


def release_topics(session: Session, release_id: int) -> tuple[str, ...]:
    """The topics a release names in its front matter (for topic opt-outs)."""
    release = release_store.get_release(session, release_id)
    return tuple((release.extra or {}).get("topics") or ())


@dataclass(frozen=True)
class SendPlan:
    """Everything the delivery engine needs to render a release, compiled once."""

    release_id: int
    client_slug: str
    sender_address: str  # client's from_address (the From header); envelope sender is VERP, not this
    content_hash: str
    variants: dict[int, Variant]  # segment_id -> compiled variant
    segment_order: tuple[int, ...]  # segment ids by position
    identity: SendingIdentity  # who signs, the return-path and Message-ID domains
    topics: tuple[str, ...] = ()  # journalists who opted out of one of these are left out
    embargo_at: datetime | None = None  # contacts not embargo_ok are left out until it lifts


def build_send_plan(session: Session, release_id: int, renderer: Renderer, settings: Settings) -> SendPlan:
    """Compile every segment's variant and hash the release as it will be sent.

    Does not check approval (see :func:`require_approved_plan`). Raises NotFoundError,
    TemplateError, and InputError/HeaderInjectionError for sender fields unfit for a header.
    """
    release = release_store.get_release(session, release_id)
    client = release_store.get_client_by_id(session, release.client_id)
    specs = variant_specs(session, release_id, settings)
    topics = release_topics(session, release_id)
    return SendPlan(
        release_id=release_id,
        client_slug=client.slug,
        sender_address=client.from_address,
        topics=topics,
        embargo_at=release.embargo_at,
        content_hash=content_hash(specs, renderer, topics),
        variants={segment_id: renderer.compile(spec) for segment_id, _, spec in specs},
        segment_order=tuple(segment_id for segment_id, _, _ in specs),
        identity=identity_for(client, settings),
    )


def require_approved_plan(session: Session, release_id: int, plan: SendPlan) -> None:
    """Raise WorkflowError unless the release stands approved (approved, sending, paused,
    sent or partial) and its newest approval's hash equals ``plan.content_hash``.

    Any edit returns a release to draft, so the status check voids approvals taken
    before an edit even if the content is later edited back to the same bytes.
    """
    release = release_store.get_release(session, release_id)
    if ReleaseStatus(release.status) not in APPROVED_RELEASE:
        raise WorkflowError(f"release {release_id} is {release.status}, not approved: refusing to send")
    approval = review_store.latest_approval(session, release_id)
    if approval is None:
        raise WorkflowError(f"release {release_id} has no approval: refusing to send")
    if approval.content_hash != plan.content_hash:
        raise WorkflowError(
            f"release {release_id} changed since {approval.approver} approved it "
            f"(approved {approval.content_hash[:12]}, now {plan.content_hash[:12]}): refusing to send"
        )


def recipient_for(contact: Contact) -> Recipient:
    """The render recipient for a contact; attribute values become strings (None → "")."""
    attributes = {
        str(k): ("" if v is None else v if isinstance(v, str) else str(v))
        for k, v in (contact.attributes or {}).items()
    }
    return Recipient(
        email=contact.email or "",
        first_name=contact.first_name or "",
        last_name=contact.last_name or "",
        outlet=contact.outlet or "",
        attributes=attributes,
        timezone=contact.timezone or "",
    )


def sample_recipient(session: Session, rule: str) -> Recipient:
    """The recipient a check, preview or proof renders for: the first contact of the
    segment ``rule`` selects, else a placeholder."""
    contact = release_store.first_segment_contact(session, rule)
    return recipient_for(contact) if contact is not None else BLANK_RECIPIENT


def pick_segment(
    specs: list[tuple[int, str, VariantSpec]], segment_slug: str | None, release_id: int
) -> tuple[int, str, VariantSpec]:
    """The entry of ``specs`` (see :func:`variant_specs`) for ``segment_slug``, the first
    when None; InputError when the release has no segments or does not go to it."""
    if not specs:
        raise InputError(f"release {release_id} has no segments")
    if segment_slug is None:
        return specs[0]
    for entry in specs:
        if entry[1] == segment_slug:
            return entry
    have = ", ".join(slug for _, slug, _ in specs)
    raise InputError(f"--segment: release {release_id} does not go to {segment_slug!r} (it goes to {have})")


def segment_rule(session: Session, release_id: int, segment_id: int) -> str:
    """The rule of segment ``segment_id`` of the release."""
    return next(seg.rule for _, seg in release_store.release_segments(session, release_id) if seg.id == segment_id)
