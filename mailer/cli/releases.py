"""Commands for clients and releases: authoring, preview, proof and the approval workflow."""

from __future__ import annotations

import getpass
import os
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mailer import releases
from mailer.accounts import permits
from mailer.cli.common import JsonOpt, ReleaseId, err, out, print_json, runtime
from mailer.domain.errors import InputError, TemplateError, TransportError, WorkflowError
from mailer.domain.states import DeliveryStatus, ReleaseStatus
from mailer.releases import control, holds
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.ledger.release_detail import release_detail
from mailer.store.tables import Client, Release

releases_app = typer.Typer(help="Write, preview, proof, submit, approve and schedule releases.", no_args_is_help=True)
clients_app = typer.Typer(help="The organisations releases are sent for.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's command groups to the root app."""
    app.add_typer(releases_app, name="releases")
    app.add_typer(clients_app, name="clients")


def _whoami(given: str | None) -> str:
    """``--as``, else ``$MAILER_USER``, else the OS login name."""
    if given:
        return given
    if os.environ.get("MAILER_USER"):
        return os.environ["MAILER_USER"]
    try:
        return getpass.getuser()
    except (OSError, KeyError) as exc:
        raise InputError("--as: cannot tell who you are; pass --as USER or set MAILER_USER") from exc


AsOpt = Annotated[str | None, typer.Option("--as", help="Who does this (default: $MAILER_USER or your login).")]


# --- clients ----------------------------------------------------------------------------


def _client_json(c: Client) -> dict[str, Any]:
    return {
        "slug": c.slug,
        "name": c.name,
        "from_name": c.from_name,
        "from_address": c.from_address,
        "reply_to": c.reply_to,
        "postal_address": c.postal_address,
        "disclosure": c.disclosure,
        "created_at": c.created_at.isoformat(),
    }


@clients_app.command("create")
def clients_create(
    slug: Annotated[str | None, typer.Argument(help="Short name, e.g. valdoria-mission (or from --file).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A client TOML file (options below override it).")] = None,
    name: Annotated[str | None, typer.Option(help="The organisation's name.")] = None,
    from_name: Annotated[str | None, typer.Option(help="Display name in From.")] = None,
    from_address: Annotated[str | None, typer.Option(help="Address in From.")] = None,
    reply_to: Annotated[str | None, typer.Option(help="Reply-To address.")] = None,
    postal_address: Annotated[str | None, typer.Option(help="Postal address for the footer (may span lines).")] = None,
    disclosure: Annotated[str | None, typer.Option(help="Disclosure statement every message must carry.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a client: sender identity, reply-to, postal address, disclosure."""
    data: dict[str, Any] = releases.load_client_file(file) if file is not None else {}
    given = {
        "slug": slug,
        "name": name,
        "from_name": from_name,
        "from_address": from_address,
        "reply_to": reply_to,
        "postal_address": postal_address,
        "disclosure": disclosure,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    fields = releases.client_fields(data)
    with runtime() as rt, transaction(rt.sessions) as session:
        client = releases.create_client(session, fields, now=rt.clock())
    if as_json:
        print_json(_client_json(client))
    else:
        out.print(f"created client {client.slug} ({client.from_name} <{client.from_address}>)", highlight=False)


@clients_app.command("show")
def clients_show(slug: str, as_json: JsonOpt = False) -> None:
    """One client with every field."""
    with runtime() as rt, transaction(rt.sessions) as session:
        client = release_store.get_client(session, slug)
    data = _client_json(client)
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/]", "" if value is None else str(value))
    out.print(table)


@clients_app.command("list")
def clients_list(as_json: JsonOpt = False) -> None:
    """Every client."""
    with runtime() as rt, transaction(rt.sessions) as session:
        clients = release_store.all_clients(session)
    if as_json:
        print_json([_client_json(c) for c in clients])
        return
    table = Table("client", "name", "from")
    for c in clients:
        table.add_row(c.slug, c.name, f"{c.from_name} <{c.from_address}>")
    out.print(table if clients else "no clients yet: `mailer clients create SLUG ...`")


# --- releases: authoring ----------------------------------------------------------------


def _summary(release: Release) -> dict[str, Any]:
    return {"id": release.id, "title": release.title, "status": release.status}


@releases_app.command("create")
def releases_create(
    file: Annotated[Path, typer.Argument(help="Markdown with TOML front matter between '+++' lines.")],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft release from a file."""
    text = releases.read_text_file(file)
    author = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        release = releases.create_release(
            session, text, author=author, renderer=releases.renderer_for(rt.settings), now=rt.clock()
        )
    if as_json:
        print_json(_summary(release))
    else:
        out.print(f"created release {release.id} (draft): {release.title}", highlight=False)


@releases_app.command("update")
def releases_update(
    release_id: ReleaseId,
    file: Annotated[Path, typer.Argument(help="The edited release file.")],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace a release's content; a submitted or approved release returns to draft."""
    text = releases.read_text_file(file)
    who = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        release = releases.update_release(
            session, release_id, text, actor=who, renderer=releases.renderer_for(rt.settings), now=rt.clock()
        )
    if as_json:
        print_json(_summary(release))
    else:
        out.print(f"updated release {release.id} (now {release.status})", highlight=False)


def _show_data(release_id: int) -> dict[str, Any]:
    with runtime() as rt, transaction(rt.sessions) as session:
        detail = release_detail(session, release_id, not_after=partial(holds.effective_not_after, settings=rt.settings))
        current: str | None
        try:
            current = releases.release_content_hash(
                session, release_id, releases.renderer_for(rt.settings), rt.settings
            )
        except (InputError, TemplateError):  # a broken template must not hide the release
            current = None
    return {
        "id": detail.id,
        "title": detail.title,
        "client": detail.client,
        "status": detail.status,
        "author": detail.author,
        "subject": detail.subject,
        "template": detail.template,
        "send_at": detail.send_at.isoformat() if detail.send_at else None,
        "not_after": detail.not_after.isoformat() if detail.not_after else None,
        "waiting": detail.waiting,
        "embargo_at": detail.embargo_at.isoformat() if detail.embargo_at else None,
        "editors": detail.editors,
        "submitted_hash": detail.content_hash,
        "current_hash": current,
        "segments": [seg.slug for seg in detail.segments],
        "variants": {
            seg.slug: {"subject": seg.subject, "intro": seg.intro, "template": seg.template}
            for seg in detail.segments
            if seg.overrides
        },
        "approvals": [
            {"approver": a.approver, "content_hash": a.content_hash, "approved_at": a.approved_at.isoformat()}
            for a in detail.approvals
        ],
        "history": [
            {"from": e.from_status, "to": e.to_status, "actor": e.actor, "at": e.at.isoformat(), "note": e.note}
            for e in detail.history
        ],
        "proofs": [
            {"to": p.to_address, "result": p.result, "content_hash": p.content_hash, "sent_at": p.sent_at.isoformat()}
            for p in detail.proofs
        ],
        "created_at": detail.created_at.isoformat(),
        "updated_at": detail.updated_at.isoformat(),
    }


@releases_app.command("show")
def releases_show(release_id: ReleaseId, as_json: JsonOpt = False) -> None:
    """A release: status, segments, variants, hash, approvals and history."""
    data = _show_data(release_id)
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]release {data['id']}[/]: {data['title']}", highlight=False)
    table = Table(show_header=False, box=None)
    for key in ("client", "status", "author", "subject", "template", "send_at", "not_after", "embargo_at"):
        table.add_row(f"[bold]{key}[/]", str(data[key] or ""))
    if data["waiting"]:
        table.add_row("[bold red]waiting[/]", escape(data["waiting"]))
    table.add_row("[bold]editors[/]", ", ".join(data["editors"]))
    table.add_row("[bold]segments[/]", ", ".join(data["segments"]))
    for slug, variant in data["variants"].items():
        shown = ", ".join(f"{k}={v!r}" for k, v in variant.items() if v is not None)
        table.add_row(f"[bold]variant {slug}[/]", shown)
    table.add_row("[bold]hash (submitted)[/]", data["submitted_hash"] or "")
    table.add_row("[bold]hash (now)[/]", data["current_hash"] or "(does not render)")
    for a in data["approvals"]:
        table.add_row("[bold]approved[/]", f"{a['approver']} at {a['approved_at']} ({a['content_hash'][:12]})")
    out.print(table)
    history = Table("at", "from", "to", "who", "note")
    for e in data["history"]:
        history.add_row(e["at"], e["from"] or "", e["to"], e["actor"], e["note"] or "")
    out.print(history)


@releases_app.command("list")
def releases_list(
    status: Annotated[str | None, typer.Option(help="Only releases in this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Releases, newest first."""
    if status is not None and status not in {s.value for s in ReleaseStatus}:
        raise InputError(f"--status: {status!r} is not one of {', '.join(s.value for s in ReleaseStatus)}")
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = release_store.list_releases(session, status=status)
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "title": r.title,
                    "client": r.client_slug,
                    "status": r.status,
                    "author": r.author,
                    "send_at": r.send_at.isoformat() if r.send_at else None,
                }
                for r in rows
            ]
        )
        return
    table = Table("id", "status", "client", "title", "send at")
    for r in rows:
        table.add_row(str(r.id), r.status, r.client_slug, r.title, r.send_at.isoformat() if r.send_at else "")
    out.print(table if rows else "no releases")


# --- releases: preview and proof --------------------------------------------------------


@releases_app.command("preview")
def releases_preview(
    release_id: ReleaseId,
    segment: Annotated[str, typer.Option(help="The segment whose variant to render.")],
    contact: Annotated[str | None, typer.Option(help="Render for this contact (default: the segment's first).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, text or eml (the whole message).")] = "eml",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the exact message (or one part of it) a recipient of a segment would get."""
    if fmt not in ("html", "text", "eml"):
        raise InputError(f"--format: {fmt!r} is not one of html, text, eml")
    with runtime() as rt, transaction(rt.sessions) as session:
        preview = releases.preview_release(
            session,
            release_id,
            segment_slug=segment,
            contact_email=contact,
            renderer=releases.renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
    if fmt == "eml":
        if preview.eml is None:
            raise InputError(preview.eml_problem or "cannot build the message")
        data = preview.eml
    elif fmt == "html":
        data = preview.parts.html.encode("utf-8")
    else:
        data = preview.parts.text.encode("utf-8")
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        err.print(f"wrote the {fmt} preview for {preview.to_addr} ({preview.segment_slug}) to {output}")


@releases_app.command("proof")
def releases_proof(
    release_id: ReleaseId,
    to: Annotated[str, typer.Option("--to", help="Where to send the proof (you).")],
    segment: Annotated[str | None, typer.Option(help="The segment whose variant to send (default: the first).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a proof through the configured SMTP relay: subject marked as a proof, recorded, never a delivery."""
    with runtime() as rt:
        result = releases.send_proof(
            rt.sessions,
            release_id,
            to_address=to,
            segment_slug=segment,
            renderer=releases.renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
    if as_json:
        print_json(
            {
                "proof_id": result.proof_id,
                "to": result.to_address,
                "segment": result.segment_slug,
                "message_id": result.message_id,
                "sent": result.sent,
                "reply": result.reply,
            }
        )
    elif result.sent:
        out.print(f"proof of release {release_id} ({result.segment_slug}) sent to {result.to_address}", highlight=False)
    if not result.sent:
        raise TransportError(f"the SMTP server refused the proof: {result.reply}")


# --- releases: workflow -----------------------------------------------------------------


@releases_app.command("submit")
def releases_submit(release_id: ReleaseId, actor: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Run the checks and submit a draft for approval (every failure is listed).

    Once user accounts exist, --as (or $MAILER_USER) must name an enabled admin or publicist."""
    given = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, permits.Action.SUBMIT)
        report = releases.submit_release(
            session,
            release_id,
            actor=who,
            renderer=releases.renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
    if as_json:
        print_json({"id": release_id, "status": "submitted", "warnings": list(report.warnings)})
        return
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    out.print(f"submitted release {release_id} for approval")


@releases_app.command("approve")
def releases_approve(
    release_id: ReleaseId,
    actor: Annotated[
        str,
        typer.Option(
            "--as",
            help="The approver: not the author, an editor or the submitter. Once user accounts exist"
            " (mailer users list), an enabled admin or approver; with none, any name.",
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Approve a submitted release as a second person; binds the approval to its content hash.

    Once user accounts exist, --as must name an enabled user whose role may approve (admin
    or approver); on an install without any accounts any name is taken as given."""
    with runtime() as rt, transaction(rt.sessions) as session:
        approver = permits.cli_actor(session, actor, permits.Action.APPROVE)
        result = releases.approve_release(
            session,
            release_id,
            approver=approver,
            renderer=releases.renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
    if result.refused is not None:
        raise WorkflowError(result.refused)
    if as_json:
        print_json({"id": release_id, "status": "approved", "approver": approver, "content_hash": result.content_hash})
    else:
        out.print(f"approved release {release_id} ({result.content_hash[:12]})")


@releases_app.command("schedule")
def releases_schedule(
    release_id: ReleaseId,
    at: Annotated[
        str | None, typer.Option("--at", help="ISO 8601 with a zone, e.g. 2026-12-01T09:00:00-05:00.")
    ] = None,
    not_after: Annotated[
        str | None,
        typer.Option("--not-after", help="Not started by then (ISO 8601 with a zone): wait for a person to confirm."),
    ] = None,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set when an approved release goes out, and/or the latest time it may start unattended."""
    when = releases.parse_time(at, "--at") if at is not None else None
    limit = releases.parse_time(not_after, "--not-after") if not_after is not None else None
    who = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        release = releases.schedule_release(session, release_id, at=when, not_after=limit, actor=who, now=rt.clock())
        # the times as given (with their zone), else as stored (UTC)
        send_at, limit_at = when or release.send_at, limit or release.not_after
    if as_json:
        print_json(
            {
                **_summary(release),
                "send_at": send_at.isoformat() if send_at else None,
                "not_after": limit_at.isoformat() if limit_at else None,
            }
        )
        return
    if when is not None:
        out.print(f"release {release_id} ({release.status}) will go out at {when.isoformat()}")
    if limit is not None:
        out.print(f"release {release_id} waits for a person if not started by {limit.isoformat()}")


@releases_app.command("confirm-late")
def releases_confirm_late(
    release_id: ReleaseId,
    resend_after_restore: Annotated[
        bool,
        typer.Option(
            "--resend-after-restore",
            help="Send even though the send fence says this database already started it (a restored copy?).",
        ),
    ] = False,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let an approved release that waits (late past its not_after, or already started per
    the send fence) start at the next `mailer run` tick; or let a release the send fence
    paused mid-send (a restored copy?) go on sending the rows this database shows as unsent."""
    who = releases.check_actor(_whoami(actor))
    with runtime() as rt, transaction(rt.sessions) as session:
        release = holds.confirm_start(
            session, release_id, actor=who, resend_after_restore=resend_after_restore, now=rt.clock()
        )
        summary = _summary(release)
    if as_json:
        print_json({**summary, "confirmed_by": who, "resend_after_restore": resend_after_restore})
    else:
        verb = "goes on sending" if summary["status"] == ReleaseStatus.SENDING.value else "starts"
        out.print(f"confirmed release {release_id}: `mailer run` {verb} it at its next tick")


@releases_app.command("cancel")
def releases_cancel(release_id: ReleaseId, actor: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a release."""
    who = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        release = releases.cancel_release(session, release_id, actor=who, now=rt.clock())
    if as_json:
        print_json(_summary(release))
    else:
        out.print(f"cancelled release {release_id}")


# --- staff controls while sending -------------------------------------------------------


@releases_app.command("pause")
def releases_pause(
    release_id: ReleaseId,
    reason: Annotated[str | None, typer.Option(help="Why (shown to staff).")] = None,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pause a release that is being sent: nothing more is claimed; messages in flight finish."""
    who = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        control.pause(session, release_id, actor=who, now=rt.clock(), reason=reason)
    if as_json:
        print_json({"id": release_id, "status": "paused"})
    else:
        out.print(f"paused release {release_id}")


@releases_app.command("resume")
def releases_resume(release_id: ReleaseId, actor: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Resume a paused release."""
    who = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        control.resume(session, release_id, actor=who, now=rt.clock())
    if as_json:
        print_json({"id": release_id, "status": "sending"})
    else:
        out.print(f"resumed release {release_id}")


@releases_app.command("retry")
def releases_retry(
    release_id: ReleaseId,
    status: Annotated[
        list[str], typer.Option("--status", help="unknown, failed, deferred or queued (repeat for several).")
    ],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-queue the release's rows in these states; they keep their Message-ID.

    `unknown` rows may already have been delivered: retrying them can send a second copy.
    Suppressed addresses are checked again before anything is sent.
    """
    try:
        chosen = [DeliveryStatus(s) for s in status]
    except ValueError as exc:
        raise InputError(f"--status: {exc}; use unknown, failed, deferred or queued") from exc
    who = _whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        count = control.retry(session, release_id, chosen, actor=who, now=rt.clock())
    if as_json:
        print_json({"id": release_id, "requeued": count})
    else:
        out.print(f"re-queued {count} deliveries of release {release_id}; `mailer run` sends them")
