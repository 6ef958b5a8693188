"""``/api/suppressions``: suppressions, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel

from mailer.domain.states import SuppressionReason
from mailer.runtime import Runtime
from mailer.store.ledger.paging import read_only
from mailer.store.ledger.suppressions import suppressions
from mailer.web.api.params import NO_NUL, Cursor, Limit


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


class SuppressionRoutes:
    """The suppression list route bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

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
        with read_only(self.runtime.sessions) as session:
            page = suppressions(
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
