"""Operator endpoints, no sign-in: ``GET /healthz`` (the process answers), ``GET /readyz``
(:func:`mailer.ops.health.readiness`: 200 when ready, 503 when not, with each check's
state and no secrets). Kept out of the API's OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from mailer.ops.health import readiness
from mailer.runtime import Runtime


class OpsRoutes:
    """The operator endpoints bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def healthz(self) -> Response:
        """The process is alive (checks nothing else)."""
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    def readyz(self) -> Response:
        """Database, migrations and heartbeats (see :mod:`mailer.ops.health`)."""
        result = readiness(self.runtime)
        return JSONResponse(
            result.as_json(), status_code=200 if result.ready else 503, headers={"Cache-Control": "no-store"}
        )

    def router(self) -> APIRouter:
        r = APIRouter(include_in_schema=False)
        r.add_api_route("/healthz", self.healthz, methods=["GET"], name="healthz")
        r.add_api_route("/readyz", self.readyz, methods=["GET"], name="readyz")
        return r
