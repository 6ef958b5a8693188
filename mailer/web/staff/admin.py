"""Users and clients in the web app (issue 21), for admins; one's own settings (time zone,
notifications) for everyone; the one-time password reset link.

Admins add users (with a role and, optionally, a first password), change roles, disable
and enable them, and make a reset link (shown once; only its hash is kept) that lets the
user choose a password and ends their sessions. Admins create and edit clients (the
fields of ``mailer clients create``, validated the same way). Every POST carries the CSRF
token (middleware); a non-admin gets 403.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.accounts import admin as accounts_admin
from mailer.accounts.passwords import hash_password
from mailer.accounts.permits import parse_role
from mailer.accounts.users import StaffUser, add_user, disable_user, list_users, require_user
from mailer.domain.errors import MailerError, NotFoundError
from mailer.domain.states import Role
from mailer.releases.clients import IDENTITY_KEYS, client_changes, client_fields, create_client, update_client
from mailer.store import releases as release_store
from mailer.store import users as user_store
from mailer.store.db import transaction
from mailer.web.staff.view import CurrentUser, StaffView

log = logging.getLogger("mailer.web.staff")

Text = Annotated[str, Form(max_length=2000)]
_CLIENT_KEYS = ("slug", "name", "from_name", "from_address", "reply_to", "postal_address", "disclosure", *IDENTITY_KEYS)


class AdminPages:
    """``/admin/users``, ``/admin/clients``, ``/account`` and ``/reset/{token}``."""

    def __init__(self, view: StaffView) -> None:
        self.view = view
        self.runtime = view.runtime

    def _refused(self, request: Request, user: StaffUser) -> Response | None:
        if user.role is Role.ADMIN:
            return None
        return self.view.page(request, "staff/forbidden.html", {"action": "administer"}, user=user, status_code=403)

    # ------------------------------------------------------------------ users

    def _users(self, request: Request, user: StaffUser, *, status_code: int = 200, **extra: Any) -> Response:
        with self.view.read() as session:
            users = [(u, require_user(session, u.email).id) for u in list_users(session)]
        context = {"users": users, "roles": [r.value for r in Role], "reset_link": None, "reset_for": None, **extra}
        return self.view.page(request, "staff/admin_users.html", context, user=user, status_code=status_code)

    def users_page(self, request: Request, user: CurrentUser) -> Response:
        """Every user: role, enabled, whether they have a password or a token; the add form."""
        return self._refused(request, user) or self._users(request, user)

    async def add(
        self,
        request: Request,
        user: CurrentUser,
        email: Text = "",
        role: Text = "",
        name: Text = "",
        password: Text = "",
    ) -> Response:
        """Add a user (no password: they get a reset link)."""
        if (refusal := self._refused(request, user)) is not None:
            return refusal
        try:
            chosen = parse_role(role)

            def work() -> None:
                with transaction(self.runtime.sessions) as session:
                    add_user(
                        session,
                        email,
                        role=chosen,
                        name=name or None,
                        password=password or None,
                        now=self.runtime.clock(),
                    )

            await run_in_threadpool(work)
        except MailerError as exc:
            return self._users(request, user, error=str(exc), status_code=422)
        log.info("%s added user %s (%s)", user.email, email, role)
        self.view.flash(request, "ok", f"added {email.strip().lower()} as {role}")
        return RedirectResponse("/admin/users", status_code=303)

    def change(self, request: Request, user_id: int, action: str, user: CurrentUser, role: Text = "") -> Response:
        """Change a user's role, disable or enable them, or make a reset link (shown once)."""
        if (refusal := self._refused(request, user)) is not None:
            return refusal
        now = self.runtime.clock()
        link = None
        try:
            with transaction(self.runtime.sessions) as session:
                target = user_store.get_user_by_id(session, user_id)
                if target is None:
                    raise NotFoundError(f"no user {user_id}")
                email = target.email
                if action == "role":
                    accounts_admin.change_role(session, email, parse_role(role), by=user.email)
                    message = f"{email} is now {role}"
                elif action == "disable":
                    if email == user.email:
                        raise MailerError("you cannot disable yourself")
                    ended = disable_user(session, email, now=now)
                    message = f"{email} disabled ({ended} sessions ended)"
                elif action == "enable":
                    accounts_admin.enable_user(session, email)
                    message = f"{email} enabled"
                elif action == "reset":
                    token = accounts_admin.issue_reset(session, email, now=now)
                    link = f"{self.runtime.settings.web.base_url.rstrip('/')}/reset/{token}"
                    message = f"reset link for {email} (works once, {accounts_admin.RESET_HOURS} hours)"
                else:
                    raise NotFoundError("no such change")
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except MailerError as exc:
            return self._users(request, user, error=str(exc), status_code=409)
        log.info("%s: %s", user.email, message)
        if link is not None:
            return self._users(request, user, reset_link=link, reset_for=email)
        self.view.flash(request, "ok", message)
        return RedirectResponse("/admin/users", status_code=303)

    # ------------------------------------------------------------------ clients

    def clients_page(self, request: Request, user: CurrentUser, edit: str | None = None) -> Response:
        """Every client, the form for a new one, or (``edit``) one client's form."""
        if (refusal := self._refused(request, user)) is not None:
            return refusal
        with self.view.read() as session:
            clients = release_store.all_clients(session)
        chosen = next((c for c in clients if c.slug == edit), None)
        form = {k: (getattr(chosen, k) or "") if chosen else "" for k in _CLIENT_KEYS}
        context = {"clients": clients, "form": form, "editing": chosen is not None}
        return self.view.page(request, "staff/admin_clients.html", context, user=user)

    def save_client(
        self,
        request: Request,
        user: CurrentUser,
        slug: Text = "",
        name: Text = "",
        from_name: Text = "",
        from_address: Text = "",
        reply_to: Text = "",
        postal_address: Text = "",
        disclosure: Text = "",
        dkim_domain: Text = "",
        dkim_selector: Text = "",
        dkim_key_file: Text = "",
        bounce_domain: Text = "",
        message_id_domain: Text = "",
        editing: Text = "",
    ) -> Response:
        """Create a client, or (``editing``) change one; errors name the field."""
        if (refusal := self._refused(request, user)) is not None:
            return refusal
        data = {
            "slug": slug, "name": name, "from_name": from_name, "from_address": from_address,
            "reply_to": reply_to, "postal_address": postal_address.replace("\r\n", "\n"),
            "disclosure": disclosure.replace("\r\n", "\n"),
            "dkim_domain": dkim_domain, "dkim_selector": dkim_selector, "dkim_key_file": dkim_key_file,
            "bounce_domain": bounce_domain, "message_id_domain": message_id_domain,
        }  # fmt: skip
        try:
            with transaction(self.runtime.sessions) as session:
                if editing == "1":
                    # An empty identity field goes back to its default (the From domain's).
                    client = release_store.get_client(session, slug)
                    update_client(session, client, client_changes(client, data, now=self.runtime.clock()))
                else:
                    given = {k: v for k, v in data.items() if k not in IDENTITY_KEYS or v.strip()}
                    create_client(session, client_fields(given), now=self.runtime.clock())
        except MailerError as exc:
            with self.view.read() as session:
                clients = release_store.all_clients(session)
            context = {"clients": clients, "form": data, "editing": editing == "1", "error": str(exc)}
            return self.view.page(request, "staff/admin_clients.html", context, user=user, status_code=422)
        self.view.flash(request, "ok", f"client {slug} saved")
        return RedirectResponse("/admin/clients", status_code=303)

    # ------------------------------------------------------------------ own settings, reset

    def account_page(self, request: Request, user: CurrentUser) -> Response:
        """One's own time zone and notifications (the password: /account/password)."""
        with self.view.read() as session:
            me = require_user(session, user.email)
            context = {"time_zone": me.time_zone or "", "notify": me.notify}
        return self.view.page(request, "staff/account.html", context, user=user)

    def save_account(self, request: Request, user: CurrentUser, time_zone: Text = "", notify: Text = "") -> Response:
        """Save one's time zone (empty: the firm's) and notification choice."""
        try:
            with transaction(self.runtime.sessions) as session:
                accounts_admin.set_preferences(session, user.id, time_zone=time_zone, notify=notify == "1")
        except MailerError as exc:
            context = {"time_zone": time_zone, "notify": notify == "1", "error": str(exc)}
            return self.view.page(request, "staff/account.html", context, user=user, status_code=422)
        self.view.flash(request, "ok", "settings saved")
        return RedirectResponse("/account", status_code=303)

    def reset_page(self, request: Request, token: str) -> Response:
        """The form behind a reset link (no sign-in)."""
        return self.view.page(request, "staff/reset.html", {"token": token}, user=None)

    async def reset(self, request: Request, token: str, new: Text = "", confirm: Text = "") -> Response:
        """Set the password from a reset link: it works once; every session ends."""
        if new != confirm:
            return self.view.page(
                request,
                "staff/reset.html",
                {"token": token, "error": "The passwords do not match."},
                user=None,
                status_code=422,
            )

        def work() -> str:
            hash_password(new)  # a short password fails before the link is used up
            with transaction(self.runtime.sessions) as session:
                return accounts_admin.reset_password(session, token, new, now=self.runtime.clock())

        try:
            email = await run_in_threadpool(work)
        except MailerError as exc:
            return self.view.page(
                request, "staff/reset.html", {"token": token, "error": str(exc)}, user=None, status_code=422
            )
        log.info("%s set a new password with a reset link", email)
        return RedirectResponse("/login", status_code=303)
