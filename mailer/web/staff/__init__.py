"""The staff UI: server-rendered pages (Jinja2, autoescaped) with htmx for live parts.

One module per resource — :mod:`~mailer.web.staff.account` (sign-in, password),
:mod:`~mailer.web.staff.dashboard`, :mod:`~mailer.web.staff.releases` (list, detail,
actions), :mod:`~mailer.web.staff.preview`, :mod:`~mailer.web.staff.log`,
:mod:`~mailer.web.staff.contacts`, :mod:`~mailer.web.staff.bounces`,
:mod:`~mailer.web.staff.suppressions`, :mod:`~mailer.web.staff.replies` (inbox, research
queue); the media list's :mod:`~mailer.web.staff.contact_list`,
:mod:`~mailer.web.staff.contact_import`, :mod:`~mailer.web.staff.lists`,
:mod:`~mailer.web.staff.segments`, :mod:`~mailer.web.staff.suppression_admin` — over
:mod:`~mailer.web.staff.view` (the page renderer and the signed-in user) and
:mod:`~mailer.web.staff.forms`. Charts are drawn server-side as SVG
(:mod:`~mailer.web.staff.charts`); CSV exports are streamed (:mod:`~mailer.web.staff.export`).
Sessions, CSRF and the Origin check: :mod:`mailer.web.auth`.

Routes are thin: parse, check the role, call one read model of
:mod:`mailer.store.ledger` or one function of :mod:`mailer.releases`, render. A path id
that is not a number in the ids' range (``/releases/99999999999999999999``,
``/releases/abc``) is 404, never a database error. :func:`staff_router` is the one
table of the staff routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.templating import Jinja2Templates

from mailer.message import Renderer
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.web.limits import LoginLimiter
from mailer.web.paths import path_ids
from mailer.web.staff.account import AccountPages
from mailer.web.staff.admin import AdminPages
from mailer.web.staff.approval import ApprovalPages
from mailer.web.staff.assets import AssetPages
from mailer.web.staff.bounces import BouncePages
from mailer.web.staff.contact_import import ContactImportPages
from mailer.web.staff.contact_list import ContactListPages
from mailer.web.staff.contacts import ContactPages
from mailer.web.staff.dashboard import DashboardPages
from mailer.web.staff.editor import EditorPages
from mailer.web.staff.lists import ListPages
from mailer.web.staff.log import LogPages
from mailer.web.staff.preview import PreviewPages
from mailer.web.staff.releases import ReleasePages
from mailer.web.staff.replies import ReplyPages
from mailer.web.staff.segments import SegmentPages
from mailer.web.staff.suppression_admin import SuppressionAdminPages
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
    replies = ReplyPages(view)
    kit = AssetPages(view)

    r = APIRouter(include_in_schema=False, dependencies=[Depends(path_ids)])
    # first: /contacts/import and /contacts are not /contacts/{email}
    add_media_list_routes(r, view)
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
    r.add_api_route("/bounces", bounces.bounces_page, methods=["GET"], name="bounces")
    r.add_api_route("/bounces.csv", bounces.bounces_csv, methods=["GET"], name="bounces_csv")
    r.add_api_route("/suppressions", sups.suppressions_page, methods=["GET"], name="suppressions")
    r.add_api_route("/suppressions.csv", sups.suppressions_csv, methods=["GET"], name="suppressions_csv")
    r.add_api_route("/contacts/{email}", contacts.contact_page, methods=["GET"], name="contact")
    r.add_api_route("/contacts/{email}/edit", contacts.edit, methods=["POST"], name="contact_edit")
    r.add_api_route("/contacts/{email}/notes", contacts.add_note, methods=["POST"], name="contact_note")
    r.add_api_route("/replies", replies.replies_page, methods=["GET"], name="replies")
    r.add_api_route("/releases/{release_id}/replies", replies.release_replies, methods=["GET"], name="release_replies")
    r.add_api_route("/contacts/{email}/replies", replies.contact_replies, methods=["GET"], name="contact_replies")
    r.add_api_route("/replies/{reply_id}/undo", replies.undo, methods=["POST"], name="reply_undo")
    r.add_api_route("/research", replies.research_page, methods=["GET"], name="research")
    r.add_api_route("/research/{item_id}/{decision}", replies.decide, methods=["POST"], name="research_decide")
    add_desk_routes(r, view, renderer, preview)
    return r


def add_media_list_routes(r: APIRouter, view: StaffView) -> None:
    """The media list (issue 15): contacts, import, lists, segments, suppressions by hand."""
    people = ContactListPages(view)
    upload = ContactImportPages(view)
    lists = ListPages(view)
    segs = SegmentPages(view)
    sup_admin = SuppressionAdminPages(view)
    r.add_api_route("/contacts", people.contacts_page, methods=["GET"], name="contacts")
    r.add_api_route("/contacts/import", upload.upload_page, methods=["GET"], name="contact_import")
    r.add_api_route("/contacts/import", upload.upload, methods=["POST"], name="contact_import_post")
    r.add_api_route("/contacts/import/{token}", upload.status_page, methods=["GET"], name="contact_import_status")
    r.add_api_route("/contacts/import/{token}/map", upload.mapping_page, methods=["GET"], name="contact_import_map")
    r.add_api_route("/contacts/import/{token}/run", upload.run, methods=["POST"], name="contact_import_run")
    r.add_api_route("/contacts/import/{token}/rejects.csv", upload.rejects_csv, methods=["GET"], name="import_rejects")
    r.add_api_route("/lists", lists.lists_page, methods=["GET"], name="lists")
    r.add_api_route("/lists", lists.create, methods=["POST"], name="list_create")
    r.add_api_route("/lists/add-from-search", lists.add_from_search, methods=["POST"], name="list_add_from_search")
    r.add_api_route("/lists/{slug}", lists.list_page, methods=["GET"], name="list")
    r.add_api_route("/lists/{slug}/rename", lists.rename, methods=["POST"], name="list_rename")
    r.add_api_route("/lists/{slug}/delete", lists.delete, methods=["POST"], name="list_delete")
    r.add_api_route("/lists/{slug}/add", lists.add, methods=["POST"], name="list_add")
    r.add_api_route("/lists/{slug}/remove", lists.remove, methods=["POST"], name="list_remove")
    r.add_api_route("/segments", segs.segments_page, methods=["GET"], name="segments")
    r.add_api_route("/segments", segs.save, methods=["POST"], name="segment_save")
    r.add_api_route("/segments/new", segs.new_editor, methods=["GET"], name="segment_new")
    r.add_api_route("/segments/preview", segs.preview, methods=["GET"], name="segment_preview")
    r.add_api_route("/segments/{slug}", segs.editor, methods=["GET"], name="segment")
    r.add_api_route("/segments/{slug}/delete", segs.delete, methods=["POST"], name="segment_delete")
    r.add_api_route("/suppressions/add", sup_admin.add, methods=["POST"], name="suppression_add")
    r.add_api_route("/suppressions/import", sup_admin.import_file, methods=["POST"], name="suppression_import")
    r.add_api_route(
        "/suppressions/{suppression_id}/lift", sup_admin.lift_page, methods=["GET"], name="suppression_lift_page"
    )
    r.add_api_route("/suppressions/{suppression_id}/lift", sup_admin.lift, methods=["POST"], name="suppression_lift")


def add_desk_routes(r: APIRouter, view: StaffView, renderer: Renderer, previews: PreviewPages) -> None:
    """The publicist's desk (issue 21): the editor, the approval page."""
    editor = EditorPages(view, renderer, previews)
    r.add_api_route("/editor/new", editor.new_page, methods=["GET"], name="editor_new")
    r.add_api_route("/releases/{release_id}/edit", editor.edit_page, methods=["GET"], name="editor_edit")
    r.add_api_route("/editor/save", editor.save, methods=["POST"], name="editor_save")
    r.add_api_route("/editor/autosave", editor.autosave, methods=["POST"], name="editor_autosave")
    r.add_api_route("/editor/audience", editor.audience, methods=["POST"], name="editor_audience")
    r.add_api_route("/editor/preview", editor.preview, methods=["POST"], name="editor_preview")
    r.add_api_route("/editor/frame", editor.live_frame, methods=["GET"], name="editor_frame")
    r.add_api_route("/editor/message.eml", editor.live_eml, methods=["GET"], name="editor_eml")
    admin = AdminPages(view)
    r.add_api_route("/admin/users", admin.users_page, methods=["GET"], name="admin_users")
    r.add_api_route("/admin/users/add", admin.add, methods=["POST"], name="admin_users_add")
    r.add_api_route("/admin/users/{user_id}/{action}", admin.change, methods=["POST"], name="admin_users_change")
    r.add_api_route("/admin/clients", admin.clients_page, methods=["GET"], name="admin_clients")
    r.add_api_route("/admin/clients", admin.save_client, methods=["POST"], name="admin_clients_save")
    r.add_api_route("/account", admin.account_page, methods=["GET"], name="account")
    r.add_api_route("/account", admin.save_account, methods=["POST"], name="account_save")
    r.add_api_route("/reset/{token}", admin.reset_page, methods=["GET"], name="reset")
    r.add_api_route("/reset/{token}", admin.reset, methods=["POST"], name="reset_post")
    approval = ApprovalPages(view, renderer)
    r.add_api_route("/releases/{release_id}/approval", approval.approval_page, methods=["GET"], name="approval")
    r.add_api_route(
        "/releases/{release_id}/approval/{decision}", approval.decide, methods=["POST"], name="approval_decide"
    )
