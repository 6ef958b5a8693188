"""The JSON API under ``/api``: views of releases, the delivery log, contacts and
suppressions, and pausing or resuming a release, for scripts and dashboards.

Every route needs ``Authorization: Bearer <token>`` with a user's API token (``mailer
users token EMAIL --scope read|write --expires-in DAYS``; only its SHA-256 is stored); a
missing, unknown, expired or disabled token is 401. A ``read`` token may only read
(GET): any other method is 403, whatever the route; a ``write`` token may also change
state, within what the user's role permits (:func:`mailer.accounts.users.permits`, else 403).
An id in the path outside 1..2**31-1, or not a number, is 404. Responses are pydantic
models, so ``/api/openapi.json`` documents them. Lists are keyset-paged like the staff
pages: pass ``after`` (the ``next_after`` of the previous page) or ``before``. Query
values are bounded (ids fit a 32-bit column, strings have a maximum length and no NUL),
so no input reaches the database in a shape it would reject with a server error.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from mailer.accounts.users import Action, ApiCaller, TokenScope, permits, token_caller
from mailer.audience.contacts import normalize_email
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.domain.states import DeliveryStatus, ReleaseStatus, SuppressionReason
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.store import ledger as q
from mailer.store import releases as release_store
from mailer.store import reports
from mailer.store.db import transaction
from mailer.web.paths import MAX_ID, path_ids

READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NO_NUL = r"^[^\x00]*$"

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID, description="Keyset cursor: an id from a previous page.")]
Limit = Annotated[int, Query(ge=1, le=q.MAX_PAGE)]

_bearer = HTTPBearer(auto_error=False, description="A user's API token (`mailer users token EMAIL`).")


class Problem(BaseModel):
    """An error: what went wrong, in one line."""

    detail: str


class ReleaseOut(BaseModel):
    id: int
    title: str
    client: str
    status: ReleaseStatus
    author: str
    send_at: datetime | None
    updated_at: datetime


class ReleasePage(BaseModel):
    items: list[ReleaseOut]
    next_after: int | None
    prev_before: int | None


class SegmentOut(BaseModel):
    slug: str
    position: int
    rule: str
    subject: str | None
    intro: str | None
    template: str | None


class ApprovalOut(BaseModel):
    approver: str
    content_hash: str
    approved_at: datetime


class ReleaseEventOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    note: str | None
    at: datetime


class ReleaseDetail(ReleaseOut):
    subject: str
    template: str
    content_hash: str | None
    pause_reason: str | None
    created_at: datetime
    segments: list[SegmentOut]
    approvals: list[ApprovalOut]
    events: list[ReleaseEventOut]


class ReportOut(BaseModel):
    release: int
    title: str
    status: str
    pause_reason: str | None
    total: int
    counts: dict[str, int] = Field(description="Deliveries by status.")
    segments: dict[str, dict[str, int]] = Field(description="Per segment slug: deliveries by status.")
    domains: dict[str, dict[str, int]] = Field(description="Per recipient domain (the largest): deliveries by status.")


class DeliveryOut(BaseModel):
    id: int
    release: int
    contact: int
    email: str | None
    domain: str | None
    segment: str | None
    status: DeliveryStatus
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    message_id: str
    sent_at: datetime | None
    updated_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_after: int | None
    prev_before: int | None


class ContactDeliveryOut(BaseModel):
    id: int
    release: int
    release_title: str
    segment: str | None
    status: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    reason: str | None
    sent_at: datetime | None
    updated_at: datetime


class ContactEventOut(BaseModel):
    id: int
    delivery: int | None
    release: int | None
    kind: str
    code: int | None
    detail: str | None
    raw: str | None = Field(description="The raw bounce message as received (truncated to bounces.keep_raw_bytes).")
    at: datetime


class ContactSuppressionOut(BaseModel):
    scope: str
    reason: str
    source: str
    created_at: datetime


class ContactOut(BaseModel):
    email: str
    name: str
    outlet: str | None
    erased: bool
    deliveries: list[ContactDeliveryOut]
    events: list[ContactEventOut]
    suppressions: list[ContactSuppressionOut]


class SuppressionOut(BaseModel):
    id: int
    email: str | None
    scope: str
    reason: str
    source: str
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_after: int | None
    prev_before: int | None


class ReleaseState(BaseModel):
    id: int
    status: ReleaseStatus


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise HTTPException(422, f"{name}: out of range") from None


class ApiRoutes:
    """The ``/api`` router bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def router(self) -> APIRouter:
        """An APIRouter with every ``/api`` route; each requires a valid Bearer token."""
        errors: dict[int | str, dict[str, Any]] = {
            401: {"model": Problem, "description": "No valid API token (missing, unknown, expired, or user disabled)."}
        }
        r = APIRouter(
            prefix="/api", tags=["api"], dependencies=[Depends(path_ids), Depends(self.caller)], responses=errors
        )
        not_found: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such object."}}
        acting: dict[int | str, dict[str, Any]] = {
            **not_found,
            403: {"model": Problem, "description": "A read-only token, or a role that may not do this."},
            409: {"model": Problem, "description": "The release's state does not allow this."},
        }
        r.add_api_route("/releases", self.list_releases, methods=["GET"], response_model=ReleasePage)
        r.add_api_route(
            "/releases/{release_id}",
            self.get_release,
            methods=["GET"],
            response_model=ReleaseDetail,
            responses=not_found,
        )
        r.add_api_route(
            "/releases/{release_id}/report",
            self.get_report,
            methods=["GET"],
            response_model=ReportOut,
            responses=not_found,
        )
        r.add_api_route("/deliveries", self.list_deliveries, methods=["GET"], response_model=DeliveryPage)
        r.add_api_route(
            "/contacts/{email}", self.get_contact, methods=["GET"], response_model=ContactOut, responses=not_found
        )
        r.add_api_route("/suppressions", self.list_suppressions, methods=["GET"], response_model=SuppressionPage)
        r.add_api_route(
            "/releases/{release_id}/pause",
            self.pause_release,
            methods=["POST"],
            response_model=ReleaseState,
            responses=acting,
        )
        r.add_api_route(
            "/releases/{release_id}/resume",
            self.resume_release,
            methods=["POST"],
            response_model=ReleaseState,
            responses=acting,
        )
        return r

    def caller(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> ApiCaller:
        """Dependency: the user owning the Bearer token and its scope; 401 without a
        valid token, 403 for a read-only token on any method but a reading one."""
        token = credentials.credentials if credentials is not None else ""
        caller = None
        if token and "\x00" not in token:
            with transaction(self.runtime.sessions) as session:
                session.connection(execution_options={"sqlite_deferred": True})
                caller = token_caller(session, token, now=self.runtime.clock())
        if caller is None:
            raise HTTPException(401, "a valid API token is required", headers={"WWW-Authenticate": "Bearer"})
        if caller.scope is not TokenScope.WRITE and request.method not in READING_METHODS:
            raise HTTPException(403, "this token is read-only (issue one with --scope write)")
        request.state.api_caller = caller
        return caller

    def _read(self) -> AbstractContextManager[Session]:
        return q.read_only(self.runtime.sessions)

    def list_releases(
        self,
        status: ReleaseStatus | None = None,
        after: Cursor = None,
        before: Cursor = None,
        limit: Limit = 50,
    ) -> ReleasePage:
        """Releases, newest first."""
        with self._read() as session:
            page = q.releases(session, status=status.value if status else None, after=after, before=before, limit=limit)
        return ReleasePage(
            items=[ReleaseOut(**vars(r)) for r in page.rows], next_after=page.next_after, prev_before=page.prev_before
        )

    def get_release(self, release_id: Id) -> ReleaseDetail:
        """One release: content summary, segments with their overrides, approvals, history."""
        try:
            with self._read() as session:
                release = release_store.get_release(session, release_id)
                client = release_store.get_client_by_id(session, release.client_id)
                segments = release_store.release_segments(session, release_id)
                approvals = release_store.release_approvals(session, release_id)
                events = release_store.release_events(session, release_id)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return ReleaseDetail(
            id=release.id,
            title=release.title,
            client=client.slug,
            status=ReleaseStatus(release.status),
            author=release.author,
            send_at=release.send_at,
            updated_at=release.updated_at,
            subject=release.subject,
            template=release.template,
            content_hash=release.content_hash,
            pause_reason=release.pause_reason,
            created_at=release.created_at,
            segments=[
                SegmentOut(
                    slug=seg.slug,
                    position=row.position,
                    rule=seg.rule,
                    subject=row.subject,
                    intro=row.intro,
                    template=row.template,
                )
                for row, seg in segments
            ],
            approvals=[
                ApprovalOut(approver=a.approver, content_hash=a.content_hash, approved_at=a.approved_at)
                for a in approvals
            ],
            events=[
                ReleaseEventOut(from_status=e.from_status, to_status=e.to_status, actor=e.actor, note=e.note, at=e.at)
                for e in events
            ],
        )

    def get_report(self, release_id: Id) -> ReportOut:
        """Delivery counts of one release by status, segment and domain."""
        try:
            with self._read() as session:
                report = reports.release_report(session, release_id)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return ReportOut(**report)

    def list_deliveries(
        self,
        release: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        status: DeliveryStatus | None = None,
        segment: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        domain: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
        email: Annotated[
            str | None,
            Query(max_length=320, pattern=NO_NUL, description="An address (exact) or a part of one (contains)."),
        ] = None,
        since: Annotated[datetime | None, Query(description="updated_at at or after (UTC if no zone).")] = None,
        until: Annotated[datetime | None, Query(description="updated_at before (UTC if no zone).")] = None,
        after: Cursor = None,
        before: Cursor = None,
        limit: Limit = 100,
    ) -> DeliveryPage:
        """The delivery log (ascending id), filtered; the same query as the staff page."""
        filters = q.LogFilter(
            release_id=release,
            status=status.value if status else None,
            segment=segment or None,
            domain=domain or None,
            email=email or None,
            since=_utc(since, "since"),
            until=_utc(until, "until"),
        )
        with self._read() as session:
            page = q.delivery_log(session, filters, after=after, before=before, limit=limit)
        items = [
            DeliveryOut(
                id=r.id,
                release=r.release_id,
                contact=r.contact_id,
                email=r.email,
                domain=r.domain,
                segment=r.segment,
                status=DeliveryStatus(r.status),
                attempts=r.attempts,
                last_code=r.last_code,
                last_reply=r.last_reply,
                reason=r.reason,
                message_id=r.message_id,
                sent_at=r.sent_at,
                updated_at=r.updated_at,
            )
            for r in page.rows
        ]
        return DeliveryPage(items=items, next_after=page.next_after, prev_before=page.prev_before)

    def get_contact(self, email: Annotated[str, Path(max_length=320, pattern=NO_NUL)]) -> ContactOut:
        """Everything recorded about one address: deliveries, events (with raw bounces),
        suppressions."""
        try:
            address = normalize_email(email)
        except InputError:
            address = email.strip().lower()
        with self._read() as session:
            history = q.contact_history(session, address)
        if history is None:
            raise HTTPException(404, "nothing recorded about this address")
        return ContactOut(
            email=history.email,
            name=history.name,
            outlet=history.outlet,
            erased=history.erased,
            deliveries=[
                ContactDeliveryOut(
                    id=d.id,
                    release=d.release_id,
                    release_title=d.release_title,
                    segment=d.segment,
                    status=d.status,
                    attempts=d.attempts,
                    last_code=d.last_code,
                    last_reply=d.last_reply,
                    reason=d.reason,
                    sent_at=d.sent_at,
                    updated_at=d.updated_at,
                )
                for d in history.deliveries
            ],
            events=[
                ContactEventOut(
                    id=e.id,
                    delivery=e.delivery_id,
                    release=e.release_id,
                    kind=e.kind,
                    code=e.code,
                    detail=e.detail,
                    raw=e.raw,
                    at=e.at,
                )
                for e in history.events
            ],
            suppressions=[ContactSuppressionOut(**vars(s)) for s in history.suppressions],
        )

    def _act(self, caller: ApiCaller, release_id: int, action: Action) -> ReleaseState:
        now, user = self.runtime.clock(), caller.user
        try:
            with transaction(self.runtime.sessions) as session:
                release = release_store.get_release(session, release_id)
                if not permits(user, action, author=release.author, status=release.status):
                    raise HTTPException(403, f"role {user.role.value} may not {action.value}")
                if action is Action.PAUSE:
                    workflow.pause(session, release_id, actor=user.email, now=now)
                else:
                    workflow.resume(session, release_id, actor=user.email, now=now)
                status = release_store.get_release(session, release_id).status
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except WorkflowError as exc:
            raise HTTPException(409, str(exc)) from None
        return ReleaseState(id=release_id, status=ReleaseStatus(status))

    def pause_release(self, request: Request, release_id: Id) -> ReleaseState:
        """Pause a sending release: no new messages are claimed (write token; admin)."""
        return self._act(request.state.api_caller, release_id, Action.PAUSE)

    def resume_release(self, request: Request, release_id: Id) -> ReleaseState:
        """Resume a paused release (write token; admin)."""
        return self._act(request.state.api_caller, release_id, Action.RESUME)

    def list_suppressions(
        self,
        reason: SuppressionReason | None = None,
        scope: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        email: Annotated[str | None, Query(max_length=320, pattern=NO_NUL)] = None,
        after: Cursor = None,
        before: Cursor = None,
        limit: Limit = 100,
    ) -> SuppressionPage:
        """Suppressions, newest first."""
        with self._read() as session:
            page = q.suppressions(
                session,
                reason=reason.value if reason else None,
                scope=scope or None,
                email=email or None,
                after=after,
                before=before,
                limit=limit,
            )
        return SuppressionPage(
            items=[SuppressionOut(**vars(s)) for s in page.rows],
            next_after=page.next_after,
            prev_before=page.prev_before,
        )
