"""Previews: the exact message one recipient of one segment would get, rendered without
sending (the CLI writes it out, the staff page shows it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailer.audience.contacts import normalize_email
from mailer.config import Settings
from mailer.domain.errors import InputError, NotFoundError
from mailer.message import Recipient, RenderedParts, Renderer, VariantSpec
from mailer.message.tokens import Tokens
from mailer.releases import compliance
from mailer.releases.authoring import DraftRelease
from mailer.releases.plan import (
    pick_segment,
    recipient_for,
    sample_recipient,
    segment_rule,
    spec_for,
    variant_specs,
)
from mailer.store import releases as release_store

__all__ = ["Preview", "preview_draft", "preview_release"]


@dataclass(frozen=True)
class Preview:
    """The message one recipient of one segment would get."""

    segment_id: int
    segment_slug: str
    to_addr: str
    parts: RenderedParts
    eml: bytes | None  # None when ``web.base_url`` cannot make a real unsubscribe link ...
    eml_problem: str | None = None  # ... and this says why


def preview_release(
    session: Session,
    release_id: int,
    *,
    segment_slug: str,
    contact_email: str | None,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
) -> Preview:
    """Render the exact message a recipient of ``segment_slug`` would get.

    The recipient is the contact ``contact_email``, else the segment's first contact,
    else a placeholder. The unsubscribe link has the real shape but reads as invalid
    (see :func:`mailer.releases.compliance.sample_unsubscribe_url`); when ``web.base_url`` is not
    https no real message can be built and ``eml`` is None. Raises NotFoundError,
    InputError, TemplateError.
    """
    specs = variant_specs(session, release_id, settings)
    segment_id, slug, spec = pick_segment(specs, segment_slug, release_id)
    if contact_email is not None:
        email = normalize_email(contact_email)
        contact = release_store.find_contact(session, email)
        if contact is None:
            raise NotFoundError(f"no contact {email!r}")
        rcpt = recipient_for(contact)
    else:
        rcpt = sample_recipient(session, segment_rule(session, release_id, segment_id))
    return _render(spec, rcpt, segment_id, slug, release_id, renderer=renderer, settings=settings, now=now)


def _render(
    spec: VariantSpec,
    rcpt: Recipient,
    segment_id: int,
    slug: str,
    release_id: int,
    *,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
) -> Preview:
    variant = renderer.compile(spec)
    try:
        unsubscribe_url = compliance.sample_unsubscribe_url(settings)
    except InputError as exc:
        parts = variant.render_parts(rcpt, to_addr=rcpt.email, unsubscribe_url="https://unsubscribe.invalid/u/preview")
        return Preview(segment_id, slug, rcpt.email, parts, None, str(exc))
    kwargs: dict[str, Any] = {
        "to_addr": rcpt.email,
        "message_id": compliance.sample_message_id(spec, f"preview.{release_id}.{segment_id}"),
        "unsubscribe_url": unsubscribe_url,
        "unsubscribe_mailto": None,
        "date": now,
        # the kit's images show (their links, without a delivery, are the public ones)
        "release_token": Tokens.from_settings(settings).release_kit(release_id),
    }
    parts = variant.render_parts(rcpt, **kwargs)
    return Preview(segment_id, slug, rcpt.email, parts, variant.render(rcpt, **kwargs))


def preview_draft(
    session: Session,
    draft: DraftRelease,
    *,
    segment_slug: str | None,
    contact_email: str | None,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
) -> Preview:
    """:func:`preview_release` for a release file not saved yet (the editor's live
    preview; :func:`mailer.releases.authoring.draft_release`). Read-only."""
    specs = [(seg.id, seg.slug, spec_for(draft.release, draft.client, row, settings)) for row, seg in draft.segments]
    segment_id, slug, spec = pick_segment(specs, segment_slug, draft.release.id)
    rule = next(seg.rule for _, seg in draft.segments if seg.id == segment_id)
    if contact_email:
        contact = release_store.find_contact(session, normalize_email(contact_email))
        if contact is None:
            raise NotFoundError(f"no contact {contact_email!r}")
        rcpt = recipient_for(contact)
    else:
        rcpt = sample_recipient(session, rule)
    return _render(spec, rcpt, segment_id, slug, draft.release.id, renderer=renderer, settings=settings, now=now)
