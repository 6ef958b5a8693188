"""The Lists page: every list with counts; create, rename, delete (guarded as on the
command line), add members by address or from a contact search, remove members.

Every change is a POST with the CSRF token, answered by a redirect and a one-line
message; a refused change says why on the next page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from mailer import store
from mailer.accounts.permits import Action, permits
from mailer.accounts.users import StaffUser
from mailer.audience import lists
from mailer.audience.contacts import check_slug, normalize_email
from mailer.domain.errors import MailerError, NotFoundError
from mailer.store import lists as list_store
from mailer.store.contact_search import ContactFilters, contact_page, matching_ids
from mailer.store.db import transaction
from mailer.web.staff.contact_list import filters_from
from mailer.web.staff.view import CurrentUser, StaffView

#: Most contacts one "add every contact matching the search" puts on a list.
BULK_LIMIT = 10_000
Short = Annotated[str, Form(max_length=200)]
Many = Annotated[str, Form(max_length=100_000)]


def _back(slug: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"/lists/{quote(slug)}" if slug else "/lists", status_code=303)


class ListPages:
    """``/lists`` and ``/lists/{slug}`` with their forms."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def lists_page(self, request: Request, user: CurrentUser) -> Response:
        """Every list with member and suppressed counts."""
        with self.view.read() as session:
            rows = store.list_summaries(session)
        context = {"lists": rows, "can_edit": permits(user, Action.CONTACTS)}
        return self.view.page(request, "staff/lists.html", context, user=user)

    def list_page(self, request: Request, slug: str, user: CurrentUser) -> Response:
        """One list: counts, the forms, and its first members (the Contacts page filtered
        by the list pages through the rest)."""
        try:
            with self.view.read() as session:
                summary = store.list_summaries(session, slug)[0]
                naming = list_store.segments_naming_list(session, slug)
                members = contact_page(session, ContactFilters(list_slug=slug), sort="email", limit=100)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        context = {
            "summary": summary,
            "segments": naming,
            "members": members,
            "can_edit": permits(user, Action.CONTACTS),
        }
        return self.view.page(request, "staff/list.html", context, user=user)

    def _change(
        self,
        request: Request,
        user: StaffUser,
        work: Callable[[Session], str],
        *,
        back: str | None,
        done: str | None = "",
    ) -> Response:
        """Run ``work(session)`` in a transaction; flash its line (then go to list ``done``,
        "" meaning ``back``) or the refusal (then go to list ``back``; None: every list)."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        try:
            with transaction(self.view.runtime.sessions) as session:
                message = work(session)
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except MailerError as exc:
            self.view.flash(request, "error", str(exc))
            return _back(back)
        self.view.flash(request, "ok", message)
        return _back(back if done == "" else done)

    def create(self, request: Request, user: CurrentUser, slug: Short = "", name: Short = "") -> Response:
        """Create an empty list."""

        def work(session: Session) -> str:
            check_slug(slug.strip(), "list")
            store.create_list(session, slug.strip(), name=name.strip() or None, now=self.view.runtime.clock())
            return f"created list {slug.strip()}"

        return self._change(request, user, work, back=None, done=slug.strip())

    def rename(self, request: Request, slug: str, user: CurrentUser, name: Short = "") -> Response:
        """Give the list a new display name."""

        def work(session: Session) -> str:
            lists.rename_list(session, slug, name)
            return f"renamed to {name.strip()!r}"

        return self._change(request, user, work, back=slug)

    def delete(self, request: Request, slug: str, user: CurrentUser, force: Short = "") -> Response:
        """Delete the list (members stay contacts); refused while a segment names it, unless forced."""

        def work(session: Session) -> str:
            return f"deleted list {slug} ({lists.delete_list(session, slug, force=bool(force))} members)"

        return self._change(request, user, work, back=slug, done=None)

    def add(self, request: Request, slug: str, user: CurrentUser, emails: Many = "") -> Response:
        """Put the contacts with these addresses (one a line, or separated by commas) on the list."""

        def work(session: Session) -> str:
            wanted = [normalize_email(e) for e in emails.replace(",", "\n").splitlines() if e.strip()]
            found = store.find_contacts_by_email(session, wanted)
            added = lists.add_members(session, slug, [c.id for c in found], now=self.view.runtime.clock())
            missing = sorted(set(wanted) - {c.email for c in found})
            tail = f"; not contacts: {', '.join(missing[:10])}" if missing else ""
            return f"added {added} to {slug}{tail}"

        return self._change(request, user, work, back=slug)

    def remove(self, request: Request, slug: str, user: CurrentUser, emails: Many = "") -> Response:
        """Take these addresses off the list."""

        def work(session: Session) -> str:
            wanted = [e for e in emails.replace(",", "\n").splitlines() if e.strip()]
            result = lists.remove_members(session, slug, wanted)
            return f"removed {len(result.removed)} from {slug}"

        return self._change(request, user, work, back=slug)

    def add_from_search(
        self,
        request: Request,
        user: CurrentUser,
        target: Annotated[str, Form(max_length=64)] = "",
        ids: Annotated[list[int] | None, Form()] = None,
        all_matching: Annotated[str, Form(max_length=4)] = "",
        q: Short = "",
        list_name: Annotated[str, Form(alias="list", max_length=64)] = "",
        outlet_type: Short = "",
        beat: Short = "",
        tag: Short = "",
        region: Short = "",
        country: Short = "",
        language: Short = "",
    ) -> Response:
        """Add the picked contacts of a search result, or every contact matching it (up
        to :data:`BULK_LIMIT`), to list ``target``."""
        filters = filters_from(q, list_name, outlet_type, beat, tag, region, country, language)

        def work(session: Session) -> str:
            if all_matching:
                chosen = matching_ids(session, filters, limit=BULK_LIMIT)
            else:
                chosen = [i for i in ids or [] if 0 < i < 2**31]
            added = lists.add_members(session, target, chosen, now=self.view.runtime.clock())
            return f"added {added} of {len(chosen)} to {target}"

        return self._change(request, user, work, back=target)
