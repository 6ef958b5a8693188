"""The staff UI: server-rendered pages (Jinja2, autoescaped) with htmx for live parts.

One module per resource — :mod:`~mailer.web.staff.account` (sign-in, password),
:mod:`~mailer.web.staff.dashboard`, :mod:`~mailer.web.staff.releases` (list, detail,
actions), :mod:`~mailer.web.staff.preview`, :mod:`~mailer.web.staff.log`,
:mod:`~mailer.web.staff.contacts`, :mod:`~mailer.web.staff.bounces`,
:mod:`~mailer.web.staff.suppressions` — over :mod:`~mailer.web.staff.view` (the page
renderer and the signed-in user) and :mod:`~mailer.web.staff.forms`. Charts are drawn
server-side as SVG (:mod:`~mailer.web.staff.charts`); CSV exports are streamed
(:mod:`~mailer.web.staff.export`). Sessions, CSRF and the Origin check:
:mod:`mailer.web.auth`.

Routes are thin: parse, check the role, call one read model of
:mod:`mailer.store.ledger` or one function of :mod:`mailer.releases`, render. A path id
that is not a number in the ids' range (``/releases/99999999999999999999``,
``/releases/abc``) is 404, never a database error. :func:`staff_router` is the one
table of the staff routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.templating import Jinja2Templates

from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.web.limits import LoginLimiter
from mailer.web.paths import path_ids
from mailer.web.staff.account import AccountPages
from mailer.web.staff.assets import AssetPages
from mailer.web.staff.bounces import BouncePages
from mailer.web.staff.contacts import ContactPages
from mailer.web.staff.dashboard import DashboardPages
from mailer.web.staff.log import LogPages
from mailer.web.staff.preview import PreviewPages
from mailer.web.staff.releases import ReleasePages
from mailer.web.staff.suppressions import SuppressionPages
from mailer.web.staff.view import StaffView


def staff_router(runtime: Runtime, templates: Jinja2Templates, *, limiter: LoginLimiter | None = None) -> APIRouter:
    """The staff routes bound to ``runtime`` and ``templates`` (kept out of the API's
    OpenAPI document); ``limiter`` replaces the sign-in limits from the settings."""
    view = StaffView(runtime, templates)
    renderer = renderer_for(runtime.settings)
    account = AccountPages(view, limiter=limiter)
    home = DashboardPages(view)
    rel = ReleasePages(view, renderer)
    preview = PreviewPages(view, renderer)
    log = LogPages(view)
    contacts = ContactPages(view)
    bounces = BouncePages(view)
    sups = SuppressionPages(view)
    kit = AssetPages(view)

    r = APIRouter(include_in_schema=False, dependencies=[Depends(path_ids)])
    r.add_api_route("/login", account.login_page, methods=["GET"], name="login")
    r.add_api_route("/login", account.login, methods=["POST"], name="login_post")
    r.add_api_route("/logout", account.logout, methods=["POST"], name="logout")
    r.add_api_route("/account/password", account.password_page, methods=["GET"], name="password")
    r.add_api_route("/account/password", account.change_password, methods=["POST"], name="password_post")
    r.add_api_route("/", home.dashboard, methods=["GET"], name="dashboard")
    r.add_api_route("/fragments/sending", home.sending_fragment, methods=["GET"], name="sending_fragment")
    r.add_api_route("/releases", rel.release_list, methods=["GET"], name="releases")
    r.add_api_route("/releases/{release_id}", rel.release_detail, methods=["GET"], name="release")
    r.add_api_route("/releases/{release_id}/progress", rel.progress_fragment, methods=["GET"], name="progress")
    r.add_api_route("/releases/{release_id}/preview", preview.bounded_preview_page, methods=["GET"], name="preview")
    r.add_api_route(
        "/releases/{release_id}/preview/frame", preview.bounded_preview_frame, methods=["GET"], name="frame"
    )
    r.add_api_route("/releases/{release_id}/confirm/{action}", rel.confirm, methods=["GET"], name="confirm")
    r.add_api_route("/releases/{release_id}/actions/{action}", rel.act, methods=["POST"], name="act")
    r.add_api_route("/releases/{release_id}/assets", kit.upload, methods=["POST"], name="asset_upload")
    r.add_api_route(
        "/releases/{release_id}/assets/{asset_id}/remove", kit.remove, methods=["POST"], name="asset_remove"
    )
    r.add_api_route("/releases/{release_id}/assets/{asset_id}", kit.file, methods=["GET"], name="asset_file")
    r.add_api_route("/log", log.log_page, methods=["GET"], name="log")
    r.add_api_route("/log.csv", log.log_csv, methods=["GET"], name="log_csv")
    r.add_api_route("/contacts/{email}", contacts.contact_page, methods=["GET"], name="contact")
    r.add_api_route("/bounces", bounces.bounces_page, methods=["GET"], name="bounces")
    r.add_api_route("/bounces.csv", bounces.bounces_csv, methods=["GET"], name="bounces_csv")
    r.add_api_route("/suppressions", sups.suppressions_page, methods=["GET"], name="suppressions")
    r.add_api_route("/suppressions.csv", sups.suppressions_csv, methods=["GET"], name="suppressions_csv")
    return r
