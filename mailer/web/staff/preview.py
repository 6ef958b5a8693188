"""Previews of a release's message per segment and contact.

Previews are served from their own route with ``Content-Security-Policy: sandbox`` and
shown in ``<iframe sandbox>``: the message's HTML runs in an opaque origin with scripts
off, never in the staff origin. Previews are rate-limited per user
(``web.previews_per_minute``, 429 beyond) and render in their own few threads
(``web.preview_concurrency``), so no number of previews can take the thread pool that
serves the unsubscribe endpoints.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from mailer.accounts.users import StaffUser
from mailer.domain.errors import MailerError, NotFoundError
from mailer.message import Renderer
from mailer.releases.plan import variant_specs
from mailer.releases.preview import Preview, preview_release
from mailer.store import releases as release_store
from mailer.web.limits import RateLimiter, ThreadSlots
from mailer.web.staff.forms import form_text
from mailer.web.staff.view import CurrentUser, StaffView

log = logging.getLogger("mailer.web.staff")

#: The sandboxed preview: no script, no plugin, no network but inline images; framed
#: only by our own pages.
PREVIEW_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class PreviewPages:
    """``/releases/{id}/preview`` and its sandboxed frame."""

    def __init__(self, view: StaffView, renderer: Renderer) -> None:
        self.view = view
        self.runtime = view.runtime
        self.renderer = renderer
        web = view.runtime.settings.web
        self.previews = RateLimiter(web.previews_per_minute, timedelta(minutes=1))
        self.preview_slots = ThreadSlots(web.preview_concurrency)
        # One warning per user per 10 s: a flood must not become a log flood.
        self._refusal_log = RateLimiter(1, timedelta(seconds=10))

    def refused(self, user: StaffUser) -> bool:
        """True (and logged) when ``user`` has used up this minute's previews (the editor's
        live preview counts too)."""
        return self._preview_refused(user)

    def _preview_refused(self, user: StaffUser) -> bool:
        """True (and logged) when ``user`` has used up this minute's previews."""
        if self.previews.take(user.id, self.runtime.clock()):
            return False
        if self._refusal_log.take(("preview", user.id), self.runtime.clock()):
            log.warning("previews refused for %s: over %s a minute", user.email, self.previews.limit)
        return True

    async def bounded_preview_page(
        self,
        request: Request,
        release_id: int,
        user: CurrentUser,
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """:meth:`preview_page` under the per-user rate limit, in a preview thread."""
        if self._preview_refused(user):
            context = {"what": "Too many previews: wait a minute and reload."}
            return self.view.page(request, "staff/too_many.html", context, user=user, status_code=429)
        return await self.preview_slots.run(self.preview_page, request, release_id, user, segment, contact)

    async def bounded_preview_frame(
        self,
        release_id: int,
        user: CurrentUser,
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """:meth:`preview_frame` under the per-user rate limit, in a preview thread."""
        if self._preview_refused(user):
            return Response("too many previews", status_code=429, media_type="text/plain", headers=PREVIEW_HEADERS)
        return await self.preview_slots.run(self.preview_frame, release_id, user, segment, contact)

    def preview_page(
        self,
        request: Request,
        release_id: int,
        user: StaffUser,
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """The message one segment (and optionally one contact) would get: subject, text
        part, and the HTML part in a sandboxed iframe."""
        try:
            with self.view.read() as session:
                slugs, chosen, preview = self._preview(session, release_id, segment, contact)
                release = release_store.get_release(session, release_id)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except MailerError as exc:
            return self.view.not_found(request, user, str(exc), status_code=422)
        context: dict[str, Any] = {
            "release": release,
            "preview": preview,
            "segments": slugs,
            "segment": chosen,
            "contact": contact or "",
        }
        return self.view.page(request, "staff/preview.html", context, user=user)

    def _preview(
        self, session: Session, release_id: int, segment: str | None, contact: str | None
    ) -> tuple[list[str], str, Preview]:
        """(segment slugs, the chosen one, its preview): the asked segment when the release
        has it, else the first; the asked contact, else the segment's first."""
        specs = variant_specs(session, release_id, self.runtime.settings)
        slugs = [slug for _, slug, _ in specs]
        chosen = segment if segment in slugs else (slugs[0] if slugs else "")
        preview = preview_release(
            session,
            release_id,
            segment_slug=chosen,
            contact_email=form_text(contact),
            renderer=self.renderer,
            settings=self.runtime.settings,
            now=self.runtime.clock(),
        )
        return slugs, chosen, preview

    def preview_frame(
        self,
        release_id: int,
        user: StaffUser,
        segment: str | None = None,
        contact: str | None = None,
    ) -> Response:
        """The HTML part alone, under ``Content-Security-Policy: sandbox`` (see module doc)."""
        try:
            with self.view.read() as session:
                _, _, preview = self._preview(session, release_id, segment, contact)
        except MailerError as exc:
            code = 404 if isinstance(exc, NotFoundError) else 422
            return Response(str(exc), status_code=code, media_type="text/plain", headers=PREVIEW_HEADERS)
        return HTMLResponse(preview.parts.html, headers=PREVIEW_HEADERS)
