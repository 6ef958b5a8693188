"""What every staff page uses: the signed-in user (a dependency), read-only units of
work, the page renderer with its flash messages, and the 403 and 404 pages."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from mailer.accounts.permits import Action
from mailer.accounts.users import StaffUser
from mailer.runtime import Runtime
from mailer.store.ledger.paging import read_only
from mailer.web.auth import Auth, csrf_token

#: Rows on one page of a staff list.
PAGE_SIZE = 50


def current_user(request: Request) -> StaffUser:
    """Dependency: the signed-in user (the app's Auth, stored on app state)."""
    auth: Auth = request.app.state.auth
    return auth.user(request)


#: A route parameter that is the signed-in user (else the sign-in page).
CurrentUser = Annotated[StaffUser, Depends(current_user)]


class StaffView:
    """One runtime and template set, and the page-level helpers bound to them."""

    def __init__(self, runtime: Runtime, templates: Jinja2Templates) -> None:
        self.runtime = runtime
        self.templates = templates

    def read(self) -> AbstractContextManager[Session]:
        """A read-only unit of work (see :func:`mailer.store.ledger.paging.read_only`)."""
        return read_only(self.runtime.sessions)

    def page(
        self, request: Request, name: str, context: dict[str, Any], *, user: StaffUser | None, status_code: int = 200
    ) -> Response:
        """The template ``name`` with the user, CSRF token, pending flash lines and ``context``."""
        flash = request.session.pop("flash", []) if user is not None else []
        base = {
            "user": user,
            "csrf_token": csrf_token(request),
            "flash": flash,
            "error": None,
            "tz": self.zone(user),
            "firm_tz": self.runtime.settings.web.time_zone,
        }
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)

    def zone(self, user: StaffUser | None) -> str:
        """The zone ``user`` sees times in: their own, else the firm's (``web.time_zone``)."""
        return (user.time_zone if user is not None else None) or self.runtime.settings.web.time_zone

    @staticmethod
    def flash(request: Request, level: str, text: str) -> None:
        """Show ``text`` on the next page this browser gets."""
        request.session["flash"] = [*request.session.get("flash", []), [level, text]]

    @staticmethod
    def go(request: Request, url: str) -> Response:
        """Send the browser to ``url``: a 303, or for an htmx request (a file upload, which
        posts through htmx to carry the CSRF token as a header) ``HX-Redirect``."""
        if request.headers.get("HX-Request"):
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    def forbidden(self, request: Request, user: StaffUser, action: Action) -> Response:
        """The 403 page for a role that may not take ``action``."""
        return self.page(request, "staff/forbidden.html", {"action": action.value}, user=user, status_code=403)

    def not_found(self, request: Request, user: StaffUser, what: str, *, status_code: int = 404) -> Response:
        """The "not found" page saying ``what`` (also used for 422 with a reason)."""
        return self.page(request, "staff/not_found.html", {"what": what}, user=user, status_code=status_code)
