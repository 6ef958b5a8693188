"""``/api/releases/{id}/correct`` and ``/withdraw``: answer a release that went out with
a correction or a withdrawal (a new draft linked to it; :mod:`mailer.releases.threads`)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

from mailer.accounts.api_tokens import ApiCaller
from mailer.accounts.permits import Action, permits
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.message import Renderer
from mailer.releases import threads
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.web.api.params import Id

#: a release file is Markdown with front matter; a few hundred kB at most
MAX_TEXT = 500_000


class CorrectionIn(BaseModel):
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        description="The correction as a release file (TOML front matter between '+++' lines; "
        "title, client, template and segments may be left out: they come from the original).",
    )


class WithdrawalIn(BaseModel):
    note: str = Field(min_length=1, max_length=MAX_TEXT, description="Why it is withdrawn: the message (Markdown).")


class Invalid(BaseModel):
    """422: the release file or note cannot be used (one line), or the body does not
    validate (FastAPI's list of errors)."""

    detail: str | list[dict[str, Any]]


class LinkedOut(BaseModel):
    id: int = Field(description="The new release (a draft: submit and approve it as any release).")
    status: ReleaseStatus
    kind: str
    parent: int
    subject: str


class ConversationRoutes:
    """The routes that answer a release, bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._renderer: Renderer | None = None

    def _render(self) -> Renderer:
        if self._renderer is None:
            self._renderer = renderer_for(self.runtime.settings)
        return self._renderer

    def _create(self, caller: ApiCaller, release_id: int, action: Action, content: str) -> LinkedOut:
        rt, user = self.runtime, caller.user
        if not permits(user, action):
            raise HTTPException(403, f"role {user.role.value} may not {action.value}")
        try:
            with transaction(rt.sessions) as session:
                verb = threads.correct if action is Action.CORRECT else threads.withdraw
                release = verb(
                    session,
                    release_id,
                    content,
                    author=user.email,
                    renderer=self._render(),
                    settings=rt.settings,
                    now=rt.clock(),
                )
                out = LinkedOut(
                    id=release.id,
                    status=ReleaseStatus(release.status),
                    kind=release.kind or "",
                    parent=release_id,
                    subject=release.subject,
                )
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except WorkflowError as exc:
            raise HTTPException(409, str(exc)) from None
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        return out

    def correct_release(self, request: Request, release_id: Id, body: CorrectionIn) -> LinkedOut:
        """Create a correction of a release that went out (write token; admin or publicist)."""
        return self._create(request.state.api_caller, release_id, Action.CORRECT, body.text)

    def withdraw_release(self, request: Request, release_id: Id, body: WithdrawalIn) -> LinkedOut:
        """Create a withdrawal of a release that went out (write token; admin or publicist)."""
        return self._create(request.state.api_caller, release_id, Action.WITHDRAW, body.note)
