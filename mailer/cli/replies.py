"""Commands for replies to releases (:mod:`mailer.inbound`): the inbox, undo, the
research queue, and the forwarder of the outbox."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Annotated

import typer
from rich.table import Table

from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, err, id_check, out, print_json, runtime
from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.replies import ReplyKind, ResearchStatus
from mailer.inbound import act, research
from mailer.inbound.forward import Forwarder
from mailer.smtp.factory import make_transport
from mailer.store import replies as reply_store
from mailer.store import research as research_store
from mailer.store.db import transaction

replies_app = typer.Typer(help="Replies to releases: inbox, undo, research queue, forwarding.", no_args_is_help=True)

ReplyIdArg = Annotated[
    int, typer.Argument(metavar="ID", callback=id_check("reply", see="mailer replies list"), show_default=False)
]
ItemIdArg = Annotated[
    int, typer.Argument(metavar="ITEM", callback=id_check("research item", see="mailer replies research"))
]


def register(app: typer.Typer) -> None:
    """Add the ``replies`` group to the root app."""
    app.add_typer(replies_app, name="replies")


@replies_app.command("list")
def replies_list(
    release: Annotated[
        int | None,
        typer.Option("--release", callback=id_check("release", see="mailer releases list"), help="Only this release."),
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind (human, out_of_office, ...).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most replies to list.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Replies, newest first: who, classification and evidence, the action taken, the forward.

    With --json: one object per line, {"id", "received_at", "release_id", "delivery_id",
    "contact_id", "email", "sender", "subject", "kind", "evidence", "return_date", "new_email",
    "new_outlet", "action", "action_detail", "undone_at", "undone_by", "channel", "text",
    "forward_to", "forwarded_at", "forward_error"}.
    """
    if kind is not None and kind not in {k.value for k in ReplyKind}:
        raise InputError(f"--kind {kind!r}: one of {', '.join(k.value for k in ReplyKind)}")
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = reply_store.list_replies(session, release_id=release, kind=kind, limit=limit)
    if as_json:
        for row in rows:
            print_json(row.as_json())
        return
    table = Table()
    for column in ("id", "received", "release", "from", "kind", "evidence", "action", "forward"):
        table.add_column(column, overflow="fold")
    for row in rows:
        forward = "" if row.forward_to is None else f"{'sent' if row.forwarded_at else 'waiting'} → {row.forward_to}"
        action = row.action_detail or row.action
        table.add_row(
            str(row.id),
            row.received_at.strftime("%Y-%m-%d %H:%M"),
            str(row.release_id or ""),
            row.sender or row.email or "",
            row.kind,
            (row.evidence or "")[:80],
            ("[undone] " if row.undone_at else "") + action,
            forward,
        )
    out.print(table)


@replies_app.command("show")
def replies_show(reply_id: ReplyIdArg, as_json: JsonOpt = False) -> None:
    """One reply with its text."""
    with runtime() as rt, transaction(rt.sessions) as session:
        found = reply_store.list_replies(session, reply_id=reply_id)
    if not found:
        raise NotFoundError(f"no reply {reply_id} (see `mailer replies list`)")
    row = found[0]
    if as_json:
        print_json(row.as_json())
        return
    out.print(f"[bold]reply {row.id}[/] from {row.sender} — {row.kind}: {row.evidence or ''}", highlight=False)
    out.print(f"action: {row.action_detail or row.action}", highlight=False)
    out.print(f"subject: {row.subject or ''}", highlight=False)
    out.print(row.text or "", markup=False, highlight=False)


@replies_app.command("undo")
def replies_undo(reply_id: ReplyIdArg, actor: AsOpt = None) -> None:
    """Undo what a reply did (lift the hold or the suppression, dismiss its research item)."""
    who = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        line = act.undo(session, reply_id, actor=who, now=rt.clock())
    out.print(f"reply {reply_id}: {line}", highlight=False)


@replies_app.command("research")
def replies_research(
    status: Annotated[str | None, typer.Option(help="open (default), confirmed, dismissed, or all.")] = "open",
    as_json: JsonOpt = False,
) -> None:
    """The research queue: new outlets or addresses, and topic suppressions, to confirm."""
    chosen = None if status == "all" else status
    if chosen is not None and chosen not in {s.value for s in ResearchStatus}:
        raise InputError(f"--status {status!r}: open, confirmed, dismissed or all")
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = research_store.list_items(session, status=chosen)
    if as_json:
        for row in rows:
            data = dict(row.__dict__)
            for key in ("created_at", "resolved_at"):
                data[key] = data[key].isoformat() if data[key] else None
            print_json(data)
        return
    table = Table()
    for column in ("item", "kind", "status", "old address", "new address", "new outlet", "topics", "reply"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            row.kind,
            row.status,
            row.old_email or "",
            row.new_email or "",
            row.new_outlet or "",
            row.topics or "",
            str(row.reply_id or ""),
        )
    out.print(table)


@replies_app.command("confirm")
def replies_confirm(
    item_id: ItemIdArg,
    email: Annotated[str | None, typer.Option(help="The new address (default: the one the reply gave).")] = None,
    outlet: Annotated[str | None, typer.Option(help="The new outlet (default: the one the reply gave).")] = None,
    topics: Annotated[str | None, typer.Option(help="Topics to suppress, comma-separated (default: proposed).")] = None,
    actor: AsOpt = None,
) -> None:
    """Confirm a research item: add the new address as a contact, or suppress the topics."""
    who = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        line = research.confirm(session, item_id, actor=who, now=rt.clock(), email=email, outlet=outlet, topics=topics)
    out.print(f"item {item_id}: {line}", highlight=False)


@replies_app.command("dismiss")
def replies_dismiss(item_id: ItemIdArg, actor: AsOpt = None) -> None:
    """Dismiss a research item."""
    who = whoami(actor)
    with runtime() as rt, transaction(rt.sessions) as session:
        research.dismiss(session, item_id, actor=who, now=rt.clock())
    out.print(f"item {item_id}: dismissed", highlight=False)


@replies_app.command("forward")
def replies_forward(
    once: Annotated[bool, typer.Option("--once", help="Forward what is due now and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    r"""Send the forwards waiting in the outbox through \[smtp] (`mailer bounces serve` does
    this too when \[replies] domain or per_client is set); until Ctrl-C / SIGTERM unless --once."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with runtime() as rt:
        forwarder = Forwarder(rt.sessions, settings=rt.settings, clock=rt.clock)
        if once:

            async def pass_once() -> tuple[int, int]:
                transport = make_transport(rt.settings.smtp)
                try:
                    summary = await forwarder.forward_due(transport, limit=500)
                finally:
                    await transport.close()
                return summary.sent, summary.failed

            sent, failed = asyncio.run(pass_once())
            with transaction(rt.sessions) as session:
                waiting = reply_store.unsent_forwards(session)
            if as_json:
                print_json({"sent": sent, "failed": failed, "waiting": waiting})
            else:
                out.print(f"forwarded {sent}, failed {failed} (tried again later), waiting {waiting}")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        err.print("forwarding replies (Ctrl-C to stop)")
        forwarder.run(lambda: make_transport(rt.settings.smtp), stop=stop)
