"""One contact: every field, lists, notes, the edit log, suppressions (its own and its
domain's) and the delivery/bounce history; the edit form and notes."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from mailer import store
from mailer.accounts.permits import Action, permits
from mailer.audience import contact_edit
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, NotFoundError
from mailer.store import contact_journal
from mailer.store import suppressions as suppression_store
from mailer.store.db import transaction
from mailer.store.ledger.history import contact_history
from mailer.web.staff.view import CurrentUser, StaffView

LongText = Annotated[str, Form(max_length=10_000)]
Field = Annotated[str, Form(max_length=400)]


def _attribute_lines(attributes: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in sorted(attributes.items()))


def parse_attribute_lines(text: str, old: dict[str, Any]) -> dict[str, str]:
    """``name: value`` lines (as the form shows them) → the attribute changes: every old
    name missing from the lines is removed (""). InputError for a line without ':'."""
    given: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise InputError(f"attributes, line {number}: write 'name: value'")
        given[name.strip()] = value.strip()
    changes = {k: "" for k in old if k not in given}
    changes.update(given)
    return changes


class ContactPages:
    """``/contacts/{email}``, its edit and its notes."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def _context(self, session: Session, address: str, user: Any) -> dict[str, Any] | None:
        history = contact_history(session, address)
        if history is None:
            return None
        context: dict[str, Any] = {
            "history": history,
            "contact": None,
            "can_edit": permits(user, Action.CONTACTS),
            "outlet_types": self.view.runtime.settings.contacts.outlet_types,
        }
        domain = address.rpartition("@")[2]
        context["domain_suppressions"] = [
            {"pattern": s.email, "scope": s.scope, "reason": s.reason, "since": s.created_at}
            for s in suppression_store.domain_suppressions_covering(session, domain)
        ]
        if history.contact_id is None or history.erased:
            return context
        contact = store.get_contact(session, address)
        beats, tags, lists = store.contact_labels(session, contact.id)
        context["contact"] = {
            "email": contact.email,
            "first_name": contact.first_name or "",
            "last_name": contact.last_name or "",
            "outlet": contact.outlet or "",
            "outlet_type": contact.outlet_type or "",
            "beats": "|".join(beats),
            "tags": "|".join(tags),
            "region": contact.region or "",
            "country": contact.country or "",
            "language": contact.language or "",
            "timezone": contact.timezone or "",
            "attributes": dict(contact.attributes or {}),
            "attribute_lines": _attribute_lines(contact.attributes or {}),
            "lists": lists,
            "created_at": contact.created_at,
            "updated_at": contact.updated_at,
        }
        context["notes"] = contact_journal.notes(session, contact.id)
        context["changes"] = contact_journal.changes(session, contact.id)
        return context

    def contact_page(self, request: Request, email: str, user: CurrentUser) -> Response:
        """Everything about one address: fields, lists, notes, edits, suppressions,
        deliveries, bounces (diagnostic and raw message), unsubscribes."""
        address = _address(email)
        with self.view.read() as session:
            context = self._context(session, address, user)
        if context is None:
            return self.view.not_found(request, user, f"nothing recorded about {address}")
        return self.view.page(request, "staff/contact.html", context, user=user)

    def edit(
        self,
        request: Request,
        email: str,
        user: CurrentUser,
        first_name: Field = "",
        last_name: Field = "",
        outlet: Field = "",
        outlet_type: Field = "",
        beats: Field = "",
        tags: Field = "",
        region: Field = "",
        country: Field = "",
        language: Field = "",
        timezone: Field = "",
        attributes: LongText = "",
    ) -> Response:
        """Save the edit form (validated as an import row; each change logged with who and when)."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        address = _address(email)
        fields = {
            "first_name": first_name,
            "last_name": last_name,
            "outlet": outlet,
            "outlet_type": outlet_type,
            "beats": beats,
            "tags": tags,
            "region": region,
            "country": country,
            "language": language,
            "timezone": timezone,
        }
        try:
            with transaction(self.view.runtime.sessions) as session:
                old = dict(store.get_contact(session, address).attributes or {})
                result = contact_edit.edit_contact(
                    session,
                    address,
                    fields,
                    attributes=parse_attribute_lines(attributes, old),
                    actor=user.email,
                    now=self.view.runtime.clock(),
                    outlet_types=self.view.runtime.settings.contacts.outlet_types,
                )
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except InputError as exc:
            with self.view.read() as session:
                context = self._context(session, address, user)
            assert context is not None
            context["error"] = str(exc)
            return self.view.page(request, "staff/contact.html", context, user=user, status_code=422)
        changed = ", ".join(c.field for c in result.changes) or "nothing"
        self.view.flash(request, "ok", f"saved: {changed} changed")
        return RedirectResponse(f"/contacts/{quote(address, safe='@')}", status_code=303)

    def add_note(self, request: Request, email: str, user: CurrentUser, text: LongText = "") -> Response:
        """Add a note (kept with who and when)."""
        if not permits(user, Action.CONTACTS):
            return self.view.forbidden(request, user, Action.CONTACTS)
        address = _address(email)
        try:
            with transaction(self.view.runtime.sessions) as session:
                contact_edit.add_note(session, address, text, actor=user.email, now=self.view.runtime.clock())
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except InputError as exc:
            self.view.flash(request, "error", str(exc))
        else:
            self.view.flash(request, "ok", "note added")
        return RedirectResponse(f"/contacts/{quote(address, safe='@')}#notes", status_code=303)


def _address(email: str) -> str:
    try:
        return normalize_email(email)
    except InputError:
        return email.strip().lower()
