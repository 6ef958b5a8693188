"""``/api/releases`` that change things (issue 21): create and update a release from its
release file, submit, approve, request changes, schedule, send now, cancel and proof.

The same rules as the command line and the staff pages: a write token, a role that
permits the action (:func:`mailer.accounts.permits.permits`, else 403), the state
machine (else 409), the release file's validation (else 422 naming the key); approval
by a second person. Pausing and resuming are in :mod:`mailer.web.api.releases`.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

from mailer.accounts.api_tokens import ApiCaller
from mailer.accounts.permits import Action, permits
from mailer.domain.errors import InputError, MailerError, NotFoundError, TemplateError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.domain.when import parse_when
from mailer.releases import workflow
from mailer.releases.approval import approve_release, request_changes, submit_release
from mailer.releases.audience import audience_size
from mailer.releases.authoring import create_release, update_release
from mailer.releases.plan import renderer_for
from mailer.releases.proof import proof_transport, send_proof
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.web.api.params import NO_NUL, Id


class ReleaseSource(BaseModel):
    """A release file: Markdown with TOML front matter between ``+++`` lines (see the README)."""

    source: str = Field(min_length=1, max_length=500_000, pattern=NO_NUL)


class Note(BaseModel):
    note: str = Field(min_length=1, max_length=10_000, pattern=NO_NUL)


class Schedule(BaseModel):
    """When: ``2026-12-01 09:00 America/New_York`` or ISO 8601 with an offset; never past."""

    at: str | None = Field(default=None, max_length=80, pattern=NO_NUL)
    not_after: str | None = Field(default=None, max_length=80, pattern=NO_NUL)


class ProofRequest(BaseModel):
    segment: str | None = Field(default=None, max_length=64, pattern=NO_NUL)


class Changed(BaseModel):
    """A release after a change: its state, and what to know."""

    id: int
    status: ReleaseStatus
    send_at: datetime | None = None
    warnings: list[str] = Field(default_factory=list)
    audience: int | None = Field(default=None, description="Contacts it reaches now (send now).")


class ProofOut(BaseModel):
    to: str
    segment: str
    sent: bool
    reply: str


def _http(exc: MailerError) -> HTTPException:
    if isinstance(exc, NotFoundError):
        return HTTPException(404, str(exc))
    if isinstance(exc, WorkflowError):
        return HTTPException(409, str(exc))
    if isinstance(exc, InputError | TemplateError):
        return HTTPException(422, str(exc))
    return HTTPException(409, str(exc))


class ReleaseWriteRoutes:
    """The write routes bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.renderer = renderer_for(runtime.settings)

    def _caller(self, request: Request) -> ApiCaller:
        caller: ApiCaller = request.state.api_caller
        return caller

    def _changed(self, release_id: int, **extra: object) -> Changed:
        with transaction(self.runtime.sessions) as session:
            release = release_store.get_release(session, release_id)
            return Changed(id=release.id, status=ReleaseStatus(release.status), send_at=release.send_at, **extra)

    def _check(self, request: Request, action: Action, release_id: int | None = None) -> str:
        """The caller's address when their role permits ``action`` (on the release); 403/404 otherwise."""
        user = self._caller(request).user
        author = status = None
        if release_id is not None:
            try:
                with transaction(self.runtime.sessions) as session:
                    release = release_store.get_release(session, release_id)
                    author, status = release.author, release.status
            except NotFoundError as exc:
                raise HTTPException(404, str(exc)) from None
        if not permits(user, action, author=author, status=status):
            raise HTTPException(403, f"role {user.role.value} may not {action.value} this release")
        return user.email

    def create(self, request: Request, body: ReleaseSource) -> Changed:
        """Create a draft release from a release file (the CLI's format and checks)."""
        actor = self._check(request, Action.WRITE)
        try:
            with transaction(self.runtime.sessions) as session:
                release = create_release(
                    session, body.source, author=actor, renderer=self.renderer, now=self.runtime.clock()
                )
                release_id = release.id
        except MailerError as exc:
            raise _http(exc) from None
        return self._changed(release_id)

    def update(self, request: Request, release_id: Id, body: ReleaseSource) -> Changed:
        """Replace a release's content; a submitted or approved release returns to draft."""
        actor = self._check(request, Action.WRITE, release_id)
        try:
            with transaction(self.runtime.sessions) as session:
                update_release(
                    session,
                    release_id,
                    body.source,
                    actor=actor,
                    renderer=self.renderer,
                    now=self.runtime.clock(),
                    settings=self.runtime.settings,
                )
        except MailerError as exc:
            raise _http(exc) from None
        return self._changed(release_id)

    def submit(self, request: Request, release_id: Id) -> Changed:
        """Run the checks and submit a draft for approval (every failure listed in a 409)."""
        actor = self._check(request, Action.SUBMIT, release_id)
        rt = self.runtime
        try:
            with transaction(rt.sessions) as session:
                report = submit_release(
                    session, release_id, actor=actor, renderer=self.renderer, settings=rt.settings, now=rt.clock()
                )
        except MailerError as exc:
            raise _http(exc) from None
        return self._changed(release_id, warnings=list(report.warnings))

    def approve(self, request: Request, release_id: Id) -> Changed:
        """Approve a submitted release as a second person (not its author, an editor or the submitter)."""
        actor = self._check(request, Action.APPROVE, release_id)
        rt = self.runtime
        try:
            with transaction(rt.sessions) as session:
                result = approve_release(
                    session, release_id, approver=actor, renderer=self.renderer, settings=rt.settings, now=rt.clock()
                )
        except MailerError as exc:
            raise _http(exc) from None
        if result.refused is not None:
            raise HTTPException(409, result.refused)
        return self._changed(release_id)

    def request_changes(self, request: Request, release_id: Id, body: Note) -> Changed:
        """Send a submitted release back to draft with a note for its author."""
        actor = self._check(request, Action.APPROVE, release_id)
        rt = self.runtime
        try:
            with transaction(rt.sessions) as session:
                request_changes(session, release_id, actor=actor, note=body.note, settings=rt.settings, now=rt.clock())
        except MailerError as exc:
            raise _http(exc) from None
        return self._changed(release_id)

    def schedule(self, request: Request, release_id: Id, body: Schedule) -> Changed:
        """Set the send time (never past; earlier than the approved one needs approval again) and/or not_after."""
        actor = self._check(request, Action.SCHEDULE, release_id)
        rt = self.runtime
        try:
            at = parse_when(body.at, "at") if body.at else None
            limit = parse_when(body.not_after, "not_after") if body.not_after else None
            with transaction(rt.sessions) as session:
                workflow.schedule(session, release_id, at=at, not_after=limit, actor=actor, now=rt.clock())
        except MailerError as exc:
            raise _http(exc) from None
        return self._changed(release_id)

    def send_now(self, request: Request, release_id: Id) -> Changed:
        """Send as soon as approved (at once if it is): the send time becomes now."""
        actor = self._check(request, Action.SCHEDULE, release_id)
        rt = self.runtime
        try:
            with transaction(rt.sessions) as session:
                workflow.schedule(session, release_id, at=None, send_now=True, actor=actor, now=rt.clock())
                count = audience_size(session, release_id)
        except MailerError as exc:
            raise _http(exc) from None
        return self._changed(release_id, audience=count)

    def cancel(self, request: Request, release_id: Id) -> Changed:
        """Cancel a release (a publicist: only their own draft)."""
        actor = self._check(request, Action.CANCEL, release_id)
        try:
            with transaction(self.runtime.sessions) as session:
                workflow.cancel(session, release_id, actor=actor, now=self.runtime.clock())
        except MailerError as exc:
            raise _http(exc) from None
        return self._changed(release_id)

    async def proof(self, request: Request, release_id: Id, body: ProofRequest) -> ProofOut:
        """Send a proof of one segment (default the first) to the caller's own address."""
        actor = self._check(request, Action.PROOF, release_id)
        try:
            async with proof_transport(self.runtime.settings) as transport:
                result = await send_proof(
                    self.runtime.sessions,
                    release_id,
                    to_address=actor,
                    segment_slug=body.segment,
                    renderer=self.renderer,
                    settings=self.runtime.settings,
                    now=self.runtime.clock(),
                    transport=transport,
                )
        except MailerError as exc:
            raise _http(exc) from None
        return ProofOut(to=result.to_address, segment=result.segment_slug, sent=result.sent, reply=result.reply)
