"""Segments: the list, and the rule editor with suggestions, a live count and sample as
you type (htmx asks ``/segments/preview`` 300 ms after the last key), errors that point at
the column, and warnings for lists, beats or tags no contact has; save and delete (refused
while a release uses the segment, as on the command line)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from mailer import store
from mailer.accounts.permits import Action, permits
from mailer.audience import lists
from mailer.audience.contacts import check_slug
from mailer.domain.errors import InputError, MailerError, NotFoundError, SegmentSyntaxError
from mailer.store import lists as list_store
from mailer.store.db import transaction
from mailer.store.segment_help import field_values, unknown_values
from mailer.store.segments import FIELDS, check_rule
from mailer.web.staff.view import CurrentUser, StaffView

Rule = Annotated[str, Query(max_length=2000)]
SAMPLE = 10
_LAST_WORD = re.compile(r"([A-Za-z0-9_.@+*\-]*)(:?)([A-Za-z0-9_.@+*\-]*)$")


@dataclass(frozen=True)
class Suggestion:
    label: str
    rule: str


def suggestions(rule: str, values: Any) -> list[Suggestion]:
    """Completions of the rule's last word: a field name, or a value of ``field:``
    (``values(field, prefix)`` gives the stored values)."""
    found = _LAST_WORD.search(rule)
    if found is None:
        return []
    word, colon, partial = found.groups()
    head = rule[: found.start()]
    if colon:
        field = word.lower()
        offered = [v for v in values(field, partial) if v != partial]
        return [Suggestion(f"{field}:{v}", f"{head}{field}:{_quoted(v)}") for v in offered]
    if word.upper() in {"AND", "OR", "NOT"} or (word and not rule.endswith(word)):
        return []
    names = [*FIELDS, "attr."]
    return [
        Suggestion(f"{n}:", f"{head}{n}{'' if n.endswith('.') else ':'}") for n in names if n.startswith(word.lower())
    ]


def _quoted(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_.@+*\-]+", value) else '"' + value.replace('"', '\\"') + '"'


class SegmentPages:
    """``/segments``, the editor, its live preview, save and delete."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def segments_page(self, request: Request, user: CurrentUser) -> Response:
        """Every segment with its rule and the releases that use it."""
        with self.view.read() as session:
            rows = [(s, list_store.releases_using_segment(session, s.slug)) for s in store.all_segments(session)]
        context = {"segments": rows, "can_edit": permits(user, Action.CONTACTS)}
        return self.view.page(request, "staff/segments.html", context, user=user)

    def editor(
        self,
        request: Request,
        slug: str,
        user: CurrentUser,
        rule: Rule = "",
        description: Annotated[str, Query(max_length=500)] = "",
    ) -> Response:
        """The rule editor for segment ``slug`` (``rule`` overrides its saved rule)."""
        try:
            with self.view.read() as session:
                saved = store.get_segment(session, slug)
                used = list_store.releases_using_segment(session, slug)
                saved_rule, saved_description = saved.rule, saved.description or ""
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        return self._editor(
            request,
            user,
            slug=slug,
            saved=True,
            used=used,
            rule=rule or saved_rule,
            description=description or saved_description,
        )

    def new_editor(
        self,
        request: Request,
        user: CurrentUser,
        rule: Rule = "",
        slug: Annotated[str, Query(max_length=64)] = "",
        description: Annotated[str, Query(max_length=500)] = "",
    ) -> Response:
        """The rule editor for a new segment (prefilled after a refused save or a suggestion)."""
        return self._editor(request, user, slug=slug, saved=False, used=[], rule=rule, description=description)

    def _editor(
        self,
        request: Request,
        user: CurrentUser,
        *,
        slug: str,
        saved: bool,
        used: list[int],
        rule: str,
        description: str,
    ) -> Response:
        context: dict[str, Any] = {
            "slug": slug,
            "saved": saved,
            "used_by": used,
            "rule": rule,
            "description": description,
            "can_edit": permits(user, Action.CONTACTS),
            "fields": [*FIELDS, "attr.NAME"],
        }
        context.update(self._preview(rule, slug if saved else ""))
        return self.view.page(request, "staff/segment.html", context, user=user)

    def preview(self, request: Request, user: CurrentUser, rule: Rule = "", slug: str = "") -> Response:
        """The live part of the editor: count, sample, error or warnings, suggestions."""
        context = self._preview(rule, slug)
        return self.view.page(request, "staff/_segment_preview.html", context, user=user)

    def _preview(self, rule: str, slug: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": None,
            "sample": [],
            "problem": None,
            "caret": None,
            "warnings": [],
            "suggestions": [],
            "preview_rule": rule,
        }
        outlet_types = self.view.runtime.settings.contacts.outlet_types
        with self.view.read() as session:

            def values(field: str, prefix: str) -> list[str]:
                if field == "outlet_type":
                    return [t for t in outlet_types if t.startswith(prefix.lower())]
                return field_values(session, field, prefix)

            base = f"/segments/{quote(slug)}?" if slug else "/segments/new?"
            out["suggestions"] = [(s.label, base + urlencode({"rule": s.rule})) for s in suggestions(rule, values)]
            if not rule.strip():
                return out
            try:
                node = check_rule(rule, outlet_types=outlet_types)
            except SegmentSyntaxError as exc:
                out["problem"] = str(exc)
                out["caret"] = " " * (exc.column - 1) + "^"
                return out
            out["warnings"] = [
                f"{field}:{value} (column {at}) matches no contact"
                if field != "list"
                else f"there is no list {value!r} (column {at})"
                for field, value, at in unknown_values(session, node)
            ]
            out["count"] = store.segment_count(session, rule)
            out["sample"] = [
                {"email": c.email, "name": " ".join(p for p in (c.first_name, c.last_name) if p), "outlet": c.outlet}
                for c in store.segment_sample(session, rule, SAMPLE)
            ]
        return out

    def save(
        self,
        request: Request,
        user: CurrentUser,
        slug: Annotated[str, Form(max_length=64)] = "",
        rule: Annotated[str, Form(max_length=2000)] = "",
        description: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        """Create a segment or replace its rule; the rule is checked first."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        try:
            check_slug(slug.strip(), "segment")
            check_rule(rule, outlet_types=self.view.runtime.settings.contacts.outlet_types)
            with transaction(self.view.runtime.sessions) as session:
                store.save_segment(
                    session,
                    slug.strip(),
                    rule.strip(),
                    description=description.strip() or None,
                    now=self.view.runtime.clock(),
                )
        except InputError as exc:
            self.view.flash(request, "error", str(exc))
            query = urlencode({"rule": rule, "slug": slug})
            return RedirectResponse(f"/segments/new?{query}", status_code=303)
        self.view.flash(request, "ok", f"saved segment {slug.strip()}")
        return RedirectResponse(f"/segments/{quote(slug.strip())}", status_code=303)

    def delete(self, request: Request, slug: str, user: CurrentUser) -> Response:
        """Delete the segment; refused while a release uses it."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        try:
            with transaction(self.view.runtime.sessions) as session:
                lists.delete_segment(session, slug)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except MailerError as exc:
            self.view.flash(request, "error", str(exc))
            return RedirectResponse(f"/segments/{quote(slug)}", status_code=303)
        self.view.flash(request, "ok", f"deleted segment {slug}")
        return RedirectResponse("/segments", status_code=303)
