"""``/api/releases``: the list, one release, its report, and pausing or resuming it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

from mailer.accounts.api_tokens import ApiCaller
from mailer.accounts.permits import Action, permits
from mailer.domain.errors import NotFoundError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.releases import workflow
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.ledger.paging import read_only
from mailer.store.ledger.release_detail import release_detail
from mailer.store.ledger.release_list import releases
from mailer.store.ledger.report import release_report
from mailer.web.api.params import Cursor, Id, Limit


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


class ReleaseState(BaseModel):
    id: int
    status: ReleaseStatus


class ReleaseRoutes:
    """The release routes bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def list_releases(
        self,
        status: ReleaseStatus | None = None,
        after: Cursor = None,
        before: Cursor = None,
        limit: Limit = 50,
    ) -> ReleasePage:
        """Releases, newest first."""
        with read_only(self.runtime.sessions) as session:
            page = releases(session, status=status.value if status else None, after=after, before=before, limit=limit)
        return ReleasePage(
            items=[ReleaseOut(**vars(r)) for r in page.rows], next_after=page.next_after, prev_before=page.prev_before
        )

    def get_release(self, release_id: Id) -> ReleaseDetail:
        """One release: content summary, segments with their overrides, approvals, history."""
        try:
            with read_only(self.runtime.sessions) as session:
                detail = release_detail(session, release_id)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return ReleaseDetail(
            id=detail.id,
            title=detail.title,
            client=detail.client,
            status=ReleaseStatus(detail.status),
            author=detail.author,
            send_at=detail.send_at,
            updated_at=detail.updated_at,
            subject=detail.subject,
            template=detail.template,
            content_hash=detail.content_hash,
            pause_reason=detail.pause_reason,
            created_at=detail.created_at,
            segments=[
                SegmentOut(
                    slug=seg.slug,
                    position=seg.position,
                    rule=seg.rule,
                    subject=seg.subject,
                    intro=seg.intro,
                    template=seg.template,
                )
                for seg in detail.segments
            ],
            approvals=[
                ApprovalOut(approver=a.approver, content_hash=a.content_hash, approved_at=a.approved_at)
                for a in detail.approvals
            ],
            events=[
                ReleaseEventOut(from_status=e.from_status, to_status=e.to_status, actor=e.actor, note=e.note, at=e.at)
                for e in detail.history
            ],
        )

    def get_report(self, release_id: Id) -> ReportOut:
        """Delivery counts of one release by status, segment and domain."""
        try:
            with read_only(self.runtime.sessions) as session:
                report = release_report(session, release_id)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        fields = asdict(report)
        del fields["problems"]  # the API's report has never carried them
        return ReportOut(**fields)

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
