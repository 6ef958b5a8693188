"""Replies to releases (:mod:`mailer.inbound`): the inbox (all, per release, per
contact: the reply's text, its classification and evidence, the action taken, the
forward, and undo) and the research queue (confirm a new address or a topic
suppression, or dismiss). Reading needs ``view``; acting needs ``write`` (admin,
publicist), and undoing a suppression (a reply's unsubscribe or "left") needs an admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from mailer.accounts.permits import Action, permits
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, MailerError, NotFoundError
from mailer.domain.replies import ReplyAction, ReplyKind, ResearchStatus
from mailer.domain.states import Role
from mailer.inbound import act, research
from mailer.store import replies as reply_store
from mailer.store import research as research_store
from mailer.store.db import transaction
from mailer.web.staff.forms import form_text
from mailer.web.staff.view import PAGE_SIZE, CurrentUser, StaffView

#: Reply actions whose undo lifts a suppression (admins only).
SUPPRESSING = frozenset({ReplyAction.UNSUBSCRIBED.value, ReplyAction.SUPPRESSED_LEFT.value})


class ReplyPages:
    """``/replies`` (and per release, per contact), undo, ``/research`` and its decisions."""

    def __init__(self, view: StaffView) -> None:
        self.view = view

    def _inbox(
        self,
        request: Request,
        user: CurrentUser,
        *,
        release_id: int | None = None,
        email: str | None = None,
        kind: str | None = None,
    ) -> Response:
        chosen = kind if kind in {k.value for k in ReplyKind} else None
        with self.view.read() as session:
            contact_id = None
            if email is not None:
                contact_id = research_store.contact_id_of(session, email)
                if contact_id is None:
                    return self.view.not_found(request, user, f"no contact {email}")
            rows = reply_store.list_replies(
                session, release_id=release_id, contact_id=contact_id, kind=chosen, limit=PAGE_SIZE * 4
            )
        context = {
            "rows": rows,
            "release_id": release_id,
            "email": email,
            "kind": chosen or "",
            "kinds": [k.value for k in ReplyKind],
            "can_act": permits(user, Action.WRITE),
            "admin": user.role is Role.ADMIN,
            "suppressing": SUPPRESSING,
            "back": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        }
        return self.view.page(request, "staff/replies.html", context, user=user)

    def replies_page(
        self,
        request: Request,
        user: CurrentUser,
        kind: str | None = None,
        release: Annotated[int | None, Query(ge=1, lt=2**31)] = None,
    ) -> Response:
        """Every reply, newest first; by kind and release."""
        return self._inbox(request, user, release_id=release, kind=kind)

    def release_replies(
        self, request: Request, release_id: int, user: CurrentUser, kind: str | None = None
    ) -> Response:
        """The inbox of one release."""
        return self._inbox(request, user, release_id=release_id, kind=kind)

    def contact_replies(self, request: Request, email: str, user: CurrentUser, kind: str | None = None) -> Response:
        """The inbox of one contact."""
        try:
            address = normalize_email(email)
        except InputError:
            return self.view.not_found(request, user, f"no contact {email}")
        return self._inbox(request, user, email=address, kind=kind)

    def undo(
        self, request: Request, reply_id: int, user: CurrentUser, back: Annotated[str, Form(max_length=500)] = ""
    ) -> Response:
        """Undo what a reply did; back to the inbox it was undone from."""
        if not permits(user, Action.WRITE):
            return self.view.forbidden(request, user, Action.WRITE)
        rt = self.view.runtime
        with self.view.read() as session:
            reply = reply_store.get_reply(session, reply_id)
            action = reply.action if reply is not None else None
        if action is None:
            return self.view.not_found(request, user, f"no reply {reply_id}")
        if action in SUPPRESSING and user.role is not Role.ADMIN:
            return self.view.forbidden(request, user, Action.WRITE)
        try:
            with transaction(rt.sessions) as session:
                line = act.undo(session, reply_id, actor=user.email, now=rt.clock())
            self.view.flash(request, "ok", f"reply {reply_id}: {line}")
        except MailerError as exc:
            self.view.flash(request, "error", str(exc))
        return RedirectResponse(_local(back, "/replies"), status_code=303)

    def research_page(self, request: Request, user: CurrentUser, status: str | None = "open") -> Response:
        """The research queue (open items by default)."""
        chosen = status if status in {s.value for s in ResearchStatus} else None
        with self.view.read() as session:
            items = research_store.list_items(session, status=chosen, limit=PAGE_SIZE * 4)
        context = {
            "items": items,
            "status": chosen or "",
            "statuses": [s.value for s in ResearchStatus],
            "can_act": permits(user, Action.WRITE),
        }
        return self.view.page(request, "staff/research.html", context, user=user)

    def decide(
        self,
        request: Request,
        item_id: int,
        decision: str,
        user: CurrentUser,
        email: Annotated[str, Form(max_length=320)] = "",
        outlet: Annotated[str, Form(max_length=200)] = "",
        topics: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        """Confirm or dismiss a research item."""
        if decision not in ("confirm", "dismiss"):
            return self.view.not_found(request, user, "no such decision")
        if not permits(user, Action.WRITE):
            return self.view.forbidden(request, user, Action.WRITE)
        rt = self.view.runtime
        try:
            with transaction(rt.sessions) as session:
                if decision == "dismiss":
                    line = research.dismiss(session, item_id, actor=user.email, now=rt.clock())
                else:
                    line = research.confirm(
                        session,
                        item_id,
                        actor=user.email,
                        now=rt.clock(),
                        email=form_text(email),
                        outlet=form_text(outlet),
                        topics=form_text(topics),
                    )
            self.view.flash(request, "ok", f"item {item_id}: {line}")
        except NotFoundError as exc:
            return self.view.not_found(request, user, str(exc))
        except MailerError as exc:
            self.view.flash(request, "error", f"item {item_id}: {exc}")
        return RedirectResponse("/research", status_code=303)


def _local(path: str, default: str) -> str:
    """``path`` when it is a path on this site (never another origin), else ``default``."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path and "\x00" not in path:
        return path
    return default
