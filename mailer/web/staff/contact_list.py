"""The Contacts page: search across name, address, outlet, beats and tags, filters, sort,
keyset pages (:func:`mailer.store.contact_search.contact_page`), and "add these to a list".

Typing in the search box asks htmx for the results table alone (``HX-Request``), the
same route and query as the full page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from mailer.accounts.permits import Action, permits
from mailer.domain.errors import InputError
from mailer.store.contact_search import SORTS, ContactFilters, contact_page
from mailer.store.lists import list_slugs
from mailer.web.staff.forms import query_string
from mailer.web.staff.view import PAGE_SIZE, CurrentUser, StaffView

Text = Annotated[str, Query(max_length=200)]


def filters_from(
    q: str = "",
    list_slug: str = "",
    outlet_type: str = "",
    beat: str = "",
    tag: str = "",
    region: str = "",
    country: str = "",
    language: str = "",
) -> ContactFilters:
    """The filters from a query string or form; a NUL drops the value."""

    def clean(value: str) -> str:
        return "" if "\x00" in value else value.strip()[:200]

    return ContactFilters(
        query=clean(q),
        list_slug=clean(list_slug),
        outlet_type=clean(outlet_type),
        beat=clean(beat),
        tag=clean(tag),
        region=clean(region),
        country=clean(country),
        language=clean(language),
    )


def filter_form(filters: ContactFilters) -> dict[str, str]:
    return {
        "q": filters.query,
        "list_slug": filters.list_slug,
        "outlet_type": filters.outlet_type,
        "beat": filters.beat,
        "tag": filters.tag,
        "region": filters.region,
        "country": filters.country,
        "language": filters.language,
    }


class ContactListPages:
    """``/contacts``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def contacts_page(
        self,
        request: Request,
        user: CurrentUser,
        q: Text = "",
        list_slug: Annotated[str, Query(alias="list", max_length=64)] = "",
        outlet_type: Text = "",
        beat: Text = "",
        tag: Text = "",
        region: Text = "",
        country: Text = "",
        language: Text = "",
        sort: Annotated[str, Query(max_length=16)] = "name",
        cursor: Annotated[str, Query(max_length=800)] = "",
    ) -> Response:
        """Contacts matching the search and filters, one keyset page in the chosen order."""
        filters = filters_from(q, list_slug, outlet_type, beat, tag, region, country, language)
        chosen = sort if sort in SORTS else "name"
        error = None
        with self.view.read() as session:
            try:
                page = contact_page(session, filters, sort=chosen, cursor=cursor or None, limit=PAGE_SIZE)
            except InputError as exc:
                error = str(exc)
                page = contact_page(session, filters, sort=chosen, limit=PAGE_SIZE)
            lists = list_slugs(session) if not request.headers.get("HX-Request") else []
        form = filter_form(filters)
        form["list"] = form.pop("list_slug")
        context = {
            "page": page,
            "form": form,
            "sort": chosen,
            "sorts": SORTS,
            "lists": lists,
            "outlet_types": self.view.runtime.settings.contacts.outlet_types,
            "query": query_string({**form, "sort": chosen}),
            "can_edit": permits(user, Action.CONTACTS),
            "error": error,
        }
        template = "staff/_contact_rows.html" if request.headers.get("HX-Request") else "staff/contacts.html"
        return self.view.page(request, template, context, user=user)
