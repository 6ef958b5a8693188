"""The JSON API under ``/api``: views of releases, the delivery log, contacts and
suppressions, and pausing or resuming a release, for scripts and dashboards.

Every route needs ``Authorization: Bearer <token>`` with a user's API token (``mailer
users token EMAIL --scope read|write --expires-in DAYS``; only its SHA-256 is stored); a
missing, unknown, expired or disabled token is 401 (:mod:`~mailer.web.api.caller`). A
``read`` token may only read (GET): any other method is 403, whatever the route; a
``write`` token may also change state, within what the user's role permits
(:func:`mailer.accounts.permits.permits`, else 403). An id in the path outside
1..2**31-1, or not a number, is 404. Responses are pydantic models, so
``/api/openapi.json`` documents them. Lists are keyset-paged like the staff pages: pass
``after`` (the ``next_after`` of the previous page) or ``before``. Query values are
bounded (ids fit a 32-bit column, strings have a maximum length and no NUL,
:mod:`~mailer.web.api.params`), so no input reaches the database in a shape it would
reject with a server error.

One module per resource (``releases``, ``deliveries``, ``contacts``, ``suppressions``);
:func:`api_router` is the one table of the API's routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mailer.runtime import Runtime
from mailer.web.api.caller import TokenCheck
from mailer.web.api.contacts import ContactOut, ContactRoutes
from mailer.web.api.conversations import ConversationRoutes, Invalid, LinkedOut
from mailer.web.api.deliveries import DeliveryPage, DeliveryRoutes
from mailer.web.api.params import Problem
from mailer.web.api.releases import ReleaseDetail, ReleasePage, ReleaseRoutes, ReleaseState, ReportOut
from mailer.web.api.suppressions import SuppressionPage, SuppressionRoutes
from mailer.web.api.write import Changed, ProofOut, ReleaseWriteRoutes
from mailer.web.paths import path_ids


def api_router(runtime: Runtime) -> APIRouter:
    """An APIRouter with every ``/api`` route bound to ``runtime``; each requires a valid Bearer token."""
    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": Problem, "description": "No valid API token (missing, unknown, expired, or user disabled)."}
    }
    r = APIRouter(
        prefix="/api", tags=["api"], dependencies=[Depends(path_ids), Depends(TokenCheck(runtime))], responses=errors
    )
    not_found: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such object."}}
    acting: dict[int | str, dict[str, Any]] = {
        **not_found,
        403: {"model": Problem, "description": "A read-only token, or a role that may not do this."},
        409: {"model": Problem, "description": "The release's state does not allow this."},
    }
    releases = ReleaseRoutes(runtime)
    deliveries = DeliveryRoutes(runtime)
    contacts = ContactRoutes(runtime)
    suppressions = SuppressionRoutes(runtime)
    r.add_api_route("/releases", releases.list_releases, methods=["GET"], response_model=ReleasePage)
    r.add_api_route(
        "/releases/{release_id}",
        releases.get_release,
        methods=["GET"],
        response_model=ReleaseDetail,
        responses=not_found,
    )
    r.add_api_route(
        "/releases/{release_id}/report",
        releases.get_report,
        methods=["GET"],
        response_model=ReportOut,
        responses=not_found,
    )
    r.add_api_route("/deliveries", deliveries.list_deliveries, methods=["GET"], response_model=DeliveryPage)
    r.add_api_route(
        "/contacts/{email}", contacts.get_contact, methods=["GET"], response_model=ContactOut, responses=not_found
    )
    r.add_api_route("/suppressions", suppressions.list_suppressions, methods=["GET"], response_model=SuppressionPage)
    r.add_api_route(
        "/releases/{release_id}/pause",
        releases.pause_release,
        methods=["POST"],
        response_model=ReleaseState,
        responses=acting,
    )
    r.add_api_route(
        "/releases/{release_id}/resume",
        releases.resume_release,
        methods=["POST"],
        response_model=ReleaseState,
        responses=acting,
    )
    add_write_routes(r, runtime, acting)
    conversations = ConversationRoutes(runtime)
    creating: dict[int | str, dict[str, Any]] = {
        **acting,
        409: {"model": Problem, "description": "The release has not started sending: it cannot be answered."},
        422: {"model": Invalid, "description": "The release file or note cannot be used as given."},
    }
    r.add_api_route(
        "/releases/{release_id}/correct",
        conversations.correct_release,
        methods=["POST"],
        response_model=LinkedOut,
        responses=creating,
    )
    r.add_api_route(
        "/releases/{release_id}/withdraw",
        conversations.withdraw_release,
        methods=["POST"],
        response_model=LinkedOut,
        responses=creating,
    )
    return r


def add_write_routes(r: APIRouter, runtime: Runtime, acting: dict[int | str, dict[str, Any]]) -> None:
    """The routes that write releases (:mod:`mailer.web.api.write`)."""
    write = ReleaseWriteRoutes(runtime)
    invalid: dict[int | str, dict[str, Any]] = {
        **acting,
        422: {"model": Problem, "description": "The release file or a time is not valid (the key is named)."},
    }
    r.add_api_route(
        "/releases", write.create, methods=["POST"], response_model=Changed, responses=invalid, status_code=201
    )
    r.add_api_route("/releases/{release_id}", write.update, methods=["PUT"], response_model=Changed, responses=invalid)
    for path, handler in (
        ("submit", write.submit),
        ("approve", write.approve),
        ("request-changes", write.request_changes),
        ("schedule", write.schedule),
        ("send-now", write.send_now),
        ("cancel", write.cancel),
    ):
        r.add_api_route(
            f"/releases/{{release_id}}/{path}", handler, methods=["POST"], response_model=Changed, responses=invalid
        )
    r.add_api_route(
        "/releases/{release_id}/proof", write.proof, methods=["POST"], response_model=ProofOut, responses=invalid
    )
