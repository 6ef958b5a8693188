"""Operator endpoints, no sign-in: ``GET /healthz`` (the process answers), ``GET /readyz``
(:func:`mailer.ops.health.readiness`: 200 when ready, 503 when not, with each check's
state and no secrets), ``GET /metrics`` (Prometheus text, :mod:`mailer.ops.metrics`;
``Authorization: Bearer TOKEN`` required when ``ops.metrics_token`` is set). Kept out
of the API's OpenAPI document."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mailer.ops.health import readiness
from mailer.ops.metrics import Metrics
from mailer.runtime import Runtime


class OpsRoutes:
    """The operator endpoints bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.metrics = Metrics(runtime)
        token = runtime.settings.ops.metrics_token
        self._token = token.get_secret_value().encode() if token is not None else None

    def healthz(self) -> Response:
        """The process is alive (checks nothing else)."""
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    def readyz(self) -> Response:
        """Database, migrations and heartbeats (see :mod:`mailer.ops.health`)."""
        result = readiness(self.runtime)
        return JSONResponse(
            result.as_json(), status_code=200 if result.ready else 503, headers={"Cache-Control": "no-store"}
        )

    def metrics_page(self, request: Request) -> Response:
        """The metrics in Prometheus text format; 401 without the configured bearer token."""
        if self._token is not None:
            given = request.headers.get("authorization", "")
            scheme, _, credentials = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), self._token):
                return Response("bearer token required\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def router(self) -> APIRouter:
        r = APIRouter(include_in_schema=False)
        r.add_api_route("/healthz", self.healthz, methods=["GET"], name="healthz")
        r.add_api_route("/readyz", self.readyz, methods=["GET"], name="readyz")
        r.add_api_route("/metrics", self.metrics_page, methods=["GET"], name="metrics")
        return r
