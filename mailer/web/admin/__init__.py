"""The admins' operator pages: the audit log (:mod:`~mailer.web.admin.audit`) and the
webhooks (:mod:`~mailer.web.admin.webhooks`). One table of routes, kept out of the API's
OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.templating import Jinja2Templates

from mailer.runtime import Runtime
from mailer.web.admin.audit import AuditPages
from mailer.web.admin.webhooks import WebhookPages
from mailer.web.paths import path_ids
from mailer.web.staff.view import StaffView


def admin_router(runtime: Runtime, templates: Jinja2Templates) -> APIRouter:
    """The ``/admin/...`` routes bound to ``runtime`` and ``templates``."""
    view = StaffView(runtime, templates)
    audit_pages = AuditPages(view)
    hooks = WebhookPages(view)
    r = APIRouter(include_in_schema=False, dependencies=[Depends(path_ids)])
    r.add_api_route("/admin/audit", audit_pages.audit_page, methods=["GET"], name="audit")
    r.add_api_route("/admin/audit.csv", audit_pages.audit_csv, methods=["GET"], name="audit_csv")
    r.add_api_route("/admin/webhooks", hooks.webhooks_page, methods=["GET"], name="webhooks")
    r.add_api_route("/admin/webhooks", hooks.add_webhook, methods=["POST"], name="webhooks_add")
    r.add_api_route("/admin/webhooks/{webhook_id}/{action}", hooks.act, methods=["POST"], name="webhooks_act")
    return r
