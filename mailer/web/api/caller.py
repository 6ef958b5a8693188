"""Who calls the API: the user owning the Bearer token, and the token's scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mailer.accounts.api_tokens import ApiCaller, TokenScope, token_caller
from mailer.runtime import Runtime
from mailer.store.ledger.paging import read_only

READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="A user's API token (`mailer users token EMAIL`).")


class TokenCheck:
    """Router dependency bound to one runtime (see :meth:`__call__`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> ApiCaller:
        """The user owning the Bearer token and its scope (also on ``request.state.api_caller``);
        401 without a valid token, 403 for a read-only token on any method but a reading one."""
        token = credentials.credentials if credentials is not None else ""
        caller = None
        if token and "\x00" not in token:
            with read_only(self.runtime.sessions) as session:
                caller = token_caller(session, token, now=self.runtime.clock())
        if caller is None:
            raise HTTPException(401, "a valid API token is required", headers={"WWW-Authenticate": "Bearer"})
        if caller.scope is not TokenScope.WRITE and request.method not in READING_METHODS:
            raise HTTPException(403, "this token is read-only (issue one with --scope write)")
        request.state.api_caller = caller
        return caller
