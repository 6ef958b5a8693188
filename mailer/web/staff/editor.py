"""The release editor (issue 21): structured fields for what a release carries, segments
with live audience counts, a variant per segment (subject, intro, template, body), drafts
saved as you type, a live preview per segment and per contact (desktop and mobile width,
text part, ``.eml`` download) beside it, and Save.

The form becomes a release file (:mod:`mailer.web.staff.editor_form`) and goes through
the CLI's parser and :mod:`mailer.releases.authoring` (one code path, the same errors
naming the key). Autosave keeps the raw form per user and release
(:mod:`mailer.store.editor_drafts`); the live preview renders the unsaved file read-only
(:func:`mailer.releases.authoring.draft_release`) in the preview threads and under the
preview rate limit of :mod:`mailer.web.staff.preview`; its HTML is served from its own
sandboxed route like every preview. htmx posts the form (with its CSRF token) on input.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.accounts.permits import Action, permits
from mailer.accounts.users import StaffUser
from mailer.domain.errors import MailerError, NotFoundError
from mailer.domain.states import ReleaseAction, ReleaseStatus, allowed_actions, send_scopes
from mailer.domain.when import format_in_zone
from mailer.message import Renderer
from mailer.releases.authoring import create_release, draft_release, update_release
from mailer.releases.preview import preview_draft
from mailer.releases.release_text import release_fields, render_file
from mailer.store import audience as audience_store
from mailer.store import contacts as contact_store
from mailer.store import editor_drafts
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.web.staff.editor_form import blank_form, fields_to_form, form_to_fields
from mailer.web.staff.preview import PREVIEW_HEADERS, PreviewPages
from mailer.web.staff.view import CurrentUser, StaffView

log = logging.getLogger("mailer.web.staff")


@dataclass(frozen=True)
class LivePreview:
    """The last live preview a user asked for (kept in memory for its frame and .eml)."""

    html: str
    eml: bytes | None


class EditorPages:
    """``/releases/new``, ``/releases/{id}/edit`` and the editor's htmx endpoints."""

    def __init__(self, view: StaffView, renderer: Renderer, previews: PreviewPages) -> None:
        self.view = view
        self.runtime = view.runtime
        self.renderer = renderer
        self.previews = previews
        self._live: dict[int, LivePreview] = {}

    # ------------------------------------------------------------------ pages

    def _choices(self) -> dict[str, Any]:
        with self.view.read() as session:
            clients = [(c.slug, c.name) for c in release_store.all_clients(session)]
            segments = [
                (s.slug, s.rule, contact_store.segment_count(session, s.rule))
                for s in contact_store.all_segments(session)
            ]
        templates = sorted(
            n.removesuffix(".html")
            for n in self.renderer.sources
            if n.endswith(".html") and "/" not in n and n != "base.html"
        )
        return {"clients": clients, "all_segments": segments, "templates": templates}

    def _editor(
        self,
        request: Request,
        user: StaffUser,
        release_id: int | None,
        form: dict[str, Any],
        *,
        notice: str | None = None,
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        context = {**self._choices(), "form": form, "release_id": release_id, "notice": notice}
        if error is not None:
            context["error"] = error
        return self.view.page(request, "staff/editor.html", context, user=user, status_code=status_code)

    def new_page(self, request: Request, user: CurrentUser) -> Response:
        """A blank editor (or the user's unsaved new release, restored)."""
        if not permits(user, Action.WRITE):
            return self.view.forbidden(request, user, Action.WRITE)
        with self.view.read() as session:
            draft = editor_drafts.find_draft(session, user.id, None)
        if draft is not None:
            fields, body = form_to_fields(json.loads(draft.source))
            return self._editor(
                request, user, None, fields_to_form(fields, body), notice="Restored your unsaved draft."
            )
        return self._editor(request, user, None, blank_form())

    def edit_page(self, request: Request, release_id: int, user: CurrentUser) -> Response:
        """The editor on a release (or on the user's unsaved changes to it, restored)."""
        if not permits(user, Action.WRITE):
            return self.view.forbidden(request, user, Action.WRITE)
        try:
            with self.view.read() as session:
                release = release_store.get_release(session, release_id)
                if ReleaseAction.EDIT not in allowed_actions(ReleaseStatus(release.status)):
                    return self.view.not_found(
                        request,
                        user,
                        f"release {release_id} is {release.status}: it can no longer be edited",
                        status_code=409,
                    )
                fields, body = release_fields(session, release_id)
                draft = editor_drafts.find_draft(session, user.id, release_id)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        notice = None
        if draft is not None and draft.updated_at >= release.updated_at:
            fields, body = form_to_fields(json.loads(draft.source))
            notice = "Restored your unsaved changes (Save to keep them)."
        if release.status != ReleaseStatus.DRAFT.value:
            notice = (
                notice or ""
            ) + f" Saving returns this {release.status} release to draft: it needs approval again."
        return self._editor(request, user, release_id, fields_to_form(fields, body), notice=notice)

    # ------------------------------------------------------------------ save

    async def save(self, request: Request, user: CurrentUser) -> Response:
        """Save the form as the release (new, or ``release_id``); errors name the key."""
        if not permits(user, Action.WRITE):
            return self.view.forbidden(request, user, Action.WRITE)
        form = await _form(request)
        release_id = _release_id(form)
        fields, body = form_to_fields(form)
        text = render_file(fields, body)
        try:
            saved = await run_in_threadpool(self._save, user, release_id, text)
        except MailerError as exc:
            code = 404 if isinstance(exc, NotFoundError) else 422
            return self._editor(
                request, user, release_id, fields_to_form(fields, body), error=str(exc), status_code=code
            )
        self.view.flash(request, "ok", f"saved release {saved}")
        return RedirectResponse(f"/releases/{saved}", status_code=303)

    def _save(self, user: StaffUser, release_id: int | None, text: str) -> int:
        rt, now = self.runtime, self.runtime.clock()
        with transaction(rt.sessions) as session:
            if release_id is None:
                saved = create_release(session, text, author=user.email, renderer=self.renderer, now=now).id
            else:
                update_release(
                    session, release_id, text, actor=user.email, renderer=self.renderer, now=now, settings=rt.settings
                )
                saved = release_id
            editor_drafts.discard_draft(session, user.id, release_id)
        log.info("%s saved release %s in the editor", user.email, saved)
        return saved

    async def autosave(self, request: Request, user: CurrentUser) -> Response:
        """htmx: keep the form as typed (nothing is checked); answers the "saved" line."""
        if not permits(user, Action.WRITE):
            return HTMLResponse("not allowed", status_code=403)
        form = await _form(request)
        release_id = _release_id(form)
        data = json.dumps({k: v for k, v in form.items() if k != "csrftoken"})
        now = self.runtime.clock()

        def keep() -> None:
            with transaction(self.runtime.sessions) as session:
                if release_id is not None:
                    release_store.get_release(session, release_id)
                editor_drafts.save_draft(session, user.id, release_id, data, now=now)

        try:
            await run_in_threadpool(keep)
        except NotFoundError:
            return HTMLResponse("no such release", status_code=404)
        zone = self.view.zone(user)
        return HTMLResponse(f'<span id="autosaved">Draft kept {format_in_zone(now, zone)}</span>')

    # ------------------------------------------------------------------ live parts

    async def audience(self, request: Request, user: CurrentUser) -> Response:
        """htmx: how many contacts the chosen segments reach now (each once, suppressions out)."""
        form = await _form(request)
        fields, _ = form_to_fields(form)

        def count() -> int:
            with self.view.read() as session:
                rules = [s.rule for s in release_store.find_segments(session, fields["segments"]).values()]
                scopes = send_scopes(fields.get("client") or "", tuple(fields.get("topics") or ()))
                return audience_store.audience_count(session, rules, scopes)

        total = await run_in_threadpool(count)
        return self.view.page(request, "staff/_audience.html", {"total": total}, user=user)

    async def preview(self, request: Request, user: CurrentUser) -> Response:
        """htmx: the unsaved release rendered for a segment and contact, or what is wrong."""
        if self.previews.refused(user):
            return self.view.page(
                request,
                "staff/_live_preview.html",
                {"problem": "Too many previews this minute: wait a moment.", "live": None},
                user=user,
                status_code=429,
            )
        form = await _form(request)
        release_id = _release_id(form)
        fields, body = form_to_fields(form)
        text = render_file(fields, body)
        segment = (form.get("preview_segment") or [""])[0] or None
        contact = (form.get("preview_contact") or [""])[0].strip() or None
        rt = self.runtime

        def render() -> tuple[Any, str | None]:
            try:
                with self.view.read() as session:
                    draft = draft_release(session, text, renderer=self.renderer, now=rt.clock(), release_id=release_id)
                    shown = segment if segment in fields["segments"] else None
                    return (
                        preview_draft(
                            session, draft, segment_slug=shown, contact_email=contact,
                            renderer=self.renderer, settings=rt.settings, now=rt.clock(),
                        ),
                        None,
                    )  # fmt: skip
            except MailerError as exc:
                return None, str(exc)

        result, problem = await self.previews.preview_slots.run(render)
        if result is not None:
            self._live[user.id] = LivePreview(result.parts.html, result.eml)
        context = {"live": result, "problem": problem, "stamp": rt.clock().timestamp()}
        return self.view.page(request, "staff/_live_preview.html", context, user=user)

    def live_frame(self, user: CurrentUser) -> Response:
        """The last live preview's HTML part, sandboxed like every preview."""
        live = self._live.get(user.id)
        html = live.html if live is not None else "<p>No preview yet.</p>"
        return HTMLResponse(html, headers=PREVIEW_HEADERS)

    def live_eml(self, user: CurrentUser) -> Response:
        """The last live preview as a whole message (``.eml``)."""
        live = self._live.get(user.id)
        if live is None or live.eml is None:
            return Response(
                "no message to download (preview first; web.base_url must be https)",
                status_code=404,
                media_type="text/plain",
            )
        return Response(
            live.eml, media_type="message/rfc822", headers={"Content-Disposition": 'attachment; filename="preview.eml"'}
        )


async def _form(request: Request) -> dict[str, list[str]]:
    data = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in data.multi_items():
        if isinstance(value, str) and "\x00" not in value and len(key) <= 200:
            out.setdefault(key, []).append(value[:200_000])
    return out


def _release_id(form: dict[str, list[str]]) -> int | None:
    raw = (form.get("release_id") or [""])[0]
    if raw.isdigit() and 1 <= int(raw) < 2**31:
        return int(raw)
    return None
