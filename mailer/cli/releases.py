"""Commands for releases: authoring, preview, proof and the approval workflow.

``register`` adds the ``releases`` group (with the controls of
:mod:`mailer.cli.release_controls` after these commands) and the ``clients`` group of
:mod:`mailer.cli.clients`.

Over 400 lines on purpose: the thin commands of one group (`mailer releases`); controls,
assets and conversations already live in their own modules.
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mailer.accounts import permits
from mailer.cli import conversations, release_assets, release_controls
from mailer.cli.actor import AsOpt, whoami
from mailer.cli.clients import clients_app
from mailer.cli.common import JsonOpt, ReleaseId, err, out, print_json, runtime
from mailer.cli.release_controls import release_summary
from mailer.domain.errors import InputError, TemplateError, TransportError, WorkflowError
from mailer.domain.states import ReleaseStatus
from mailer.releases import holds, workflow
from mailer.releases.approval import approve_release, request_changes, submit_release
from mailer.releases.audience import audience_size
from mailer.releases.authoring import create_release, update_release
from mailer.releases.plan import release_content_hash, renderer_for
from mailer.releases.preview import preview_release
from mailer.releases.proof import ProofResult, proof_transport, send_proof
from mailer.releases.source import parse_time, read_text_file
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.ledger.release_detail import release_detail

releases_app = typer.Typer(help="Write, preview, proof, submit, approve and schedule releases.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's command groups to the root app."""
    release_controls.add_commands(releases_app)
    conversations.add_commands(releases_app)
    release_assets.add_commands(releases_app)
    app.add_typer(releases_app, name="releases")
    app.add_typer(clients_app, name="clients")


# --- releases: authoring ----------------------------------------------------------------


@releases_app.command("create")
def releases_create(
    file: Annotated[Path, typer.Argument(help="Markdown with TOML front matter between '+++' lines.")],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a draft release from a file.

    Once user accounts exist, --as (or $MAILER_USER) must name an enabled admin or publicist."""
    text = read_text_file(file)
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        author = permits.cli_actor(session, given, permits.Action.WRITE)
        release = create_release(session, text, author=author, renderer=renderer_for(rt.settings), now=rt.clock())
    if as_json:
        print_json(release_summary(release))
    else:
        out.print(f"created release {release.id} (draft): {release.title}", highlight=False)


@releases_app.command("update")
def releases_update(
    release_id: ReleaseId,
    file: Annotated[Path, typer.Argument(help="The edited release file.")],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace a release's content; a submitted or approved release returns to draft.

    Once user accounts exist, --as (or $MAILER_USER) must name an enabled admin or publicist."""
    text = read_text_file(file)
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, permits.Action.WRITE)
        release = update_release(
            session,
            release_id,
            text,
            actor=who,
            renderer=renderer_for(rt.settings),
            now=rt.clock(),
            settings=rt.settings,
        )
    if as_json:
        print_json(release_summary(release))
    else:
        out.print(f"updated release {release.id} (now {release.status})", highlight=False)


def _show_data(release_id: int) -> dict[str, Any]:
    with runtime() as rt, transaction(rt.sessions) as session:
        detail = release_detail(session, release_id, not_after=partial(holds.effective_not_after, settings=rt.settings))
        current: str | None
        try:
            current = release_content_hash(session, release_id, renderer_for(rt.settings), rt.settings)
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
        "kind": detail.kind,
        "parent": detail.parent_id,
        "linked": [{"id": r.id, "kind": r.kind, "status": r.status} for r in detail.linked],
        "send_at_local": detail.send_at_local,
        "timezone": detail.timezone,
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
    for key in (
        "client",
        "status",
        "author",
        "subject",
        "template",
        "send_at",
        "send_at_local",
        "not_after",
        "embargo_at",
    ):
        table.add_row(f"[bold]{key}[/]", str(data[key] or ""))
    if data["waiting"]:
        table.add_row("[bold red]waiting[/]", escape(data["waiting"]))
    if data["parent"]:
        table.add_row(f"[bold]{data['kind']} of[/]", f"release {data['parent']}")
    for r in data["linked"]:
        table.add_row(f"[bold]{r['kind']}[/]", f"release {r['id']} ({r['status']})")
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
        preview = preview_release(
            session,
            release_id,
            segment_slug=segment,
            contact_email=contact,
            renderer=renderer_for(rt.settings),
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

    async def send(rt: Runtime) -> ProofResult:
        async with proof_transport(rt.settings) as transport:
            return await send_proof(
                rt.sessions,
                release_id,
                to_address=to,
                segment_slug=segment,
                renderer=renderer_for(rt.settings),
                settings=rt.settings,
                now=rt.clock(),
                transport=transport,
            )

    with runtime() as rt:
        result = asyncio.run(send(rt))
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
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, permits.Action.SUBMIT)
        report = submit_release(
            session,
            release_id,
            actor=who,
            renderer=renderer_for(rt.settings),
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
            " (mailer users list), an enabled admin or approver, with their password; with none, any name.",
        ),
    ],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the approver's password from the first line of standard input."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Approve a submitted release as a second person; binds the approval to its content hash.

    Once user accounts exist, --as must name an enabled user whose role may approve (admin
    or approver) and the password must be theirs (--password-stdin, or typed when asked
    on a terminal); on an install without any accounts any name is taken as given."""
    with runtime() as rt, transaction(rt.sessions) as session:
        password = read_password(password_stdin) if permits.accounts_exist(session) else None
        approver = permits.cli_approver(session, actor, password)
        result = approve_release(
            session,
            release_id,
            approver=approver,
            renderer=renderer_for(rt.settings),
            settings=rt.settings,
            now=rt.clock(),
        )
    if result.refused is not None:
        raise WorkflowError(result.refused)
    if as_json:
        print_json({"id": release_id, "status": "approved", "approver": approver, "content_hash": result.content_hash})
    else:
        out.print(f"approved release {release_id} ({result.content_hash[:12]})")


def read_password(from_stdin: bool) -> str | None:
    """The first line of standard input (``--password-stdin``), else a hidden prompt on a
    terminal, else None."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InputError("--password-stdin: no password on standard input")
        return line
    if sys.stdin.isatty():
        value: str = typer.prompt("Password", hide_input=True)
        return value
    return None


@releases_app.command("request-changes")
def releases_request_changes(
    release_id: ReleaseId,
    note: Annotated[str, typer.Option("--note", help="What should change (the author is told).")],
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a submitted release back to draft with a note for its author.

    Once user accounts exist, --as (or $MAILER_USER) must name an enabled admin or approver."""
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, permits.Action.APPROVE)
        request_changes(session, release_id, actor=who, note=note, settings=rt.settings, now=rt.clock())
    if as_json:
        print_json({"id": release_id, "status": "draft", "note": note})
    else:
        out.print(f"release {release_id} is back to draft with your note")


@releases_app.command("schedule")
def releases_schedule(
    release_id: ReleaseId,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="When: 2026-12-01 09:00 America/New_York, or ISO 8601 with an offset (2026-12-01T09:00:00-05:00)."
            " Never in the past.",
        ),
    ] = None,
    now: Annotated[bool, typer.Option("--now", help="Send as soon as it is approved (or at once, if it is).")] = False,
    not_after: Annotated[
        str | None,
        typer.Option("--not-after", help="Not started by then (same forms as --at): wait for a person to confirm."),
    ] = None,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set when a release goes out (--at, or --now), and/or the latest time it may start unattended.

    Moving an approved release's send time earlier than the approved one sends it back
    for approval. Once user accounts exist, --as (or $MAILER_USER) must name an enabled
    admin or publicist."""
    when = parse_time(at, "--at") if at is not None else None
    limit = parse_time(not_after, "--not-after") if not_after is not None else None
    given = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        who = permits.cli_actor(session, given, permits.Action.SCHEDULE)
        before = release_store.get_release(session, release_id).status
        release = workflow.schedule(
            session, release_id, at=when, not_after=limit, actor=who, now=rt.clock(), send_now=now
        )
        # the times as given (with their zone), else as stored (UTC)
        send_at, limit_at = when or release.send_at, limit or release.not_after
        count = audience_size(session, release_id) if now else None
    if as_json:
        print_json(
            {
                **release_summary(release),
                "send_at": send_at.isoformat() if send_at else None,
                "not_after": limit_at.isoformat() if limit_at else None,
                **({"audience": count} if count is not None else {}),
            }
        )
        return
    if before == ReleaseStatus.APPROVED.value and release.status == ReleaseStatus.SUBMITTED.value:
        err.print(
            f"[yellow]note:[/] release {release_id} goes back to submitted: the new time is earlier than the "
            "approved one, so it needs approval again",
            highlight=False,
        )
    if now:
        out.print(f"release {release_id} ({release.status}) goes out now to about {count} contacts", highlight=False)
    elif when is not None:
        out.print(f"release {release_id} ({release.status}) will go out at {when.isoformat()}")
    if limit is not None:
        out.print(f"release {release_id} waits for a person if not started by {limit.isoformat()}")
