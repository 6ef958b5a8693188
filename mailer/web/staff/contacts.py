"""One address's history: deliveries, bounces (diagnostic and raw message),
unsubscribes, suppressions."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError
from mailer.store.ledger.history import contact_history
from mailer.web.staff.view import CurrentUser, StaffView


class ContactPages:
    """``/contacts/{email}``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def contact_page(self, request: Request, email: str, user: CurrentUser) -> Response:
        """Everything about one address: deliveries, bounces (diagnostic and raw message),
        unsubscribes, suppressions."""
        try:
            address = normalize_email(email)
        except InputError:
            address = email.strip().lower()
        with self.view.read() as session:
            history = contact_history(session, address)
        if history is None:
            return self.view.not_found(request, user, f"nothing recorded about {address}")
        return self.view.page(request, "staff/contact.html", {"history": history}, user=user)
