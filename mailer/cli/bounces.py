"""Commands for returned mail: parse notices, ingest mailboxes, run the receiver, and
read what was kept for staff (``mailer bounces inbox``)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mailer.bounces.domains import ClientBounceDomains
from mailer.bounces.ingest import ImapOptions, ImapPoller, IngestSummary, connect_imap, detect_source, ingest_path
from mailer.bounces.parse import parse_message
from mailer.bounces.process import BounceProcessor
from mailer.bounces.receive import BounceServer, serve_bounces
from mailer.bounces.report import report_to_json
from mailer.cli.common import STATE, JsonOpt, err, id_check, out, print_json, runtime
from mailer.domain.errors import ConfigError, InputError, NotFoundError
from mailer.inbound.capture import ReplyDesk
from mailer.inbound.desk import InboundProcessor
from mailer.inbound.forward import Forwarder
from mailer.message.tokens import Tokens
from mailer.ops.heartbeat import HeartbeatThread
from mailer.ops.logs import configure_logging
from mailer.releases.replyto import replies_captured
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import bounces as bounce_store
from mailer.store.db import transaction

bounces_app = typer.Typer(
    help="Returned mail: parse notices, ingest mailboxes, run the receiver.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``bounces`` group to the root app."""
    app.add_typer(bounces_app, name="bounces")


def _processor(rt: Runtime) -> InboundProcessor:
    """Bounces, and replies when ``[replies] domain`` is set or ``per_client`` is on (:mod:`mailer.inbound`)."""
    settings = rt.settings
    tokens = Tokens.from_settings(settings)
    bounces = BounceProcessor(
        rt.sessions,
        policy=settings.bounces,
        tokens=tokens,
        bounce_domain=settings.sender.bounce_domain,
        clock=rt.clock,
        client_domains=ClientBounceDomains(rt.sessions, settings),
    )
    replies = (
        ReplyDesk(
            rt.sessions, settings=settings, tokens=tokens, clock=rt.clock, client_domains=bounces.is_bounce_domain
        )
        if replies_captured(settings)
        else None
    )
    return InboundProcessor(bounces, replies, tokens=tokens, bounce_domain=settings.sender.bounce_domain)


@bounces_app.command("parse")
def bounces_parse(
    files: Annotated[list[Path], typer.Argument(help="Message files (.eml) to parse.")],
    as_json: JsonOpt = False,
) -> None:
    """Parse notices and show what each says; needs no database or config.

    With --json: one object per line, {"file", "kind", "recipients": [{"address",
    "action", "status", "diagnostic", "class", "reason", "fault"}], "token", "original_message_id"}.
    """
    table = Table()
    for column in ("file", "kind", "recipient", "action", "status", "class", "reason", "fault"):
        table.add_column(column, overflow="fold")
    for file in files:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise InputError(f"{file}: cannot read: {exc.strerror}") from exc
        report = parse_message(raw)
        if as_json:
            print_json(report_to_json(report, file=str(file)))
            continue
        if not report.recipients:
            table.add_row(str(file), report.kind.value, "", "", "", "", "", "")
        for r in report.recipients:
            table.add_row(
                str(file),
                report.kind.value,
                r.address,
                r.action,
                r.status or "",
                r.bounce_class.value,
                r.reason.value,
                r.fault.value if r.fault is not None else "",
            )
    if not as_json:
        out.print(table)


def _print_summary(source: str, summary: IngestSummary) -> None:
    counts = summary.as_json()
    shown = ", ".join(f"{value} {key}" for key, value in counts.items() if key != "processed" and value)
    out.print(f"{source}: {summary.processed} messages" + (f" — {shown}" if shown else ""), highlight=False)


@bounces_app.command("ingest")
def bounces_ingest(
    path: Annotated[Path, typer.Argument(help="A message file, a directory of .eml files, an mbox or a Maildir.")],
    as_json: JsonOpt = False,
) -> None:
    """Process returned messages from files or a local mailbox.

    Each message is committed before it is marked: a Maildir's handled messages move
    to cur/ flagged seen; human mail and unmatched notices stay where they were. Safe
    to repeat: a notice already recorded counts as a duplicate.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    detect_source(path)  # a wrong path is the user's mistake: say so before touching the database
    with runtime() as rt:
        processor = _processor(rt)
        if as_json or not err.is_terminal:
            summary = ingest_path(processor, path)
        else:
            with Progress(
                TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
            ) as bar:
                task = bar.add_task("ingest", total=None)

                def advance(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                summary = ingest_path(processor, path, progress=advance)
    if as_json:
        print_json(summary.as_json())
    else:
        _print_summary(str(path), summary)


@bounces_app.command("serve")
def bounces_serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: bounces.listen_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: bounces.listen_port).")] = None,
    smtp: Annotated[bool, typer.Option("--smtp", help="Speak SMTP instead of LMTP.")] = False,
) -> None:
    """Receive returned mail over LMTP (or SMTP) until Ctrl-C / SIGTERM.

    Only bounces+TOKEN@ and unsubscribe+TOKEN@ addresses with a genuine token, at
    sender.bounce_domain or any client's return-path domain, are accepted (and
    postmaster@/abuse@ there), and reply+TOKEN@ at replies.domain when it is set, and at
    every client's return-path domain with replies.per_client (replies are then forwarded
    from here too); each message is committed before the 250 reply.
    """
    configure_logging(STATE.settings.log)
    with runtime() as rt:
        settings = rt.settings.bounces
        lmtp = settings.lmtp and not smtp

        # Beats (GET /readyz's inbound heartbeat) from the moment the port is bound.
        beats = HeartbeatThread(rt, "inbound")

        def ready(server: BounceServer) -> None:
            protocol = "LMTP" if server.lmtp else "SMTP"
            err.print(
                f"receiving bounces over {protocol} on {server.host}:{server.port} "
                f"for {rt.settings.sender.bounce_domain} and every client's return-path domain (Ctrl-C to stop)",
                highlight=False,
            )
            beats.start()

        stop = threading.Event()
        forwarding = None
        if replies_captured(rt.settings):
            forwarder = Forwarder(rt.sessions, settings=rt.settings, clock=rt.clock)
            forwarding = threading.Thread(
                target=forwarder.run,
                args=(lambda: make_transport(rt.settings.smtp),),
                kwargs={"stop": stop},
                name="reply-forwarder",
                daemon=True,
            )
            forwarding.start()
        try:
            serve_bounces(
                _processor(rt),
                host=host if host is not None else settings.listen_host,
                port=port if port is not None else settings.listen_port,
                lmtp=lmtp,
                on_ready=ready,
            )
        finally:
            if beats.is_alive():
                beats.stop()
            stop.set()
            if forwarding is not None:
                forwarding.join(timeout=30)
    err.print("stopped")


@bounces_app.command("poll")
def bounces_poll(
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    r"""Read returned mail from the IMAP mailbox in \[bounces.imap] (until Ctrl-C / SIGTERM)."""
    with runtime() as rt:
        imap = rt.settings.bounces.imap
        if not imap.host or not imap.username or imap.password is None:
            raise ConfigError("bounces.imap: set host, username and MAILER_BOUNCES__IMAP__PASSWORD to poll")
        options = ImapOptions(
            host=imap.host,
            username=imap.username,
            password=imap.password.get_secret_value(),
            port=imap.port,
            ssl=imap.ssl,
            folder=imap.folder,
            processed_folder=imap.processed_folder,
            poll_seconds=imap.poll_seconds,
            timeout=imap.timeout,
            batch_size=imap.batch_size,
        )
        poller = ImapPoller(_processor(rt), options)
        if once:
            client = connect_imap(options)
            try:
                summary = poller.poll_once(client)
            finally:
                client.logout()
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            err.print(f"polling {imap.host} every {imap.poll_seconds:g} s (Ctrl-C to stop)", highlight=False)
            summary = poller.run(stop=stop)
    if as_json:
        print_json(summary.as_json())
    else:
        out.print(", ".join(f"{k} {v}" for k, v in summary.as_json().items()))


@bounces_app.command("inbox")
def bounces_inbox(
    category: Annotated[
        str | None,
        typer.Option(help="Only 'staff' (mail to postmaster@/abuse@/the feedback address) or 'review'."),
    ] = None,
    show: Annotated[
        int | None,
        typer.Option(
            "--show",
            callback=id_check("kept message", see="mailer bounces inbox"),
            help="Print the raw message kept with this id.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most messages to list.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Mail kept for staff, newest first: anything sent to postmaster@, abuse@ or the
    feedback-loop address that was not filed (``staff``), and notices matched without a
    signed VERP token (``review``: they never suppress or score; act on them by hand).

    With --json: one object per line, {"id", "category", "received_at", "envelope_to",
    "sender", "subject", "message_id", "delivery_id", "summary"}.
    """
    if category is not None and category not in ("staff", "review"):
        raise InputError(f"--category {category!r}: use staff or review")
    with runtime() as rt, transaction(rt.sessions) as session:
        if show is not None:
            raw = bounce_store.inbound_raw(session, show)
            if raw is None:
                raise NotFoundError(f"no kept message {show} with its raw text (see `mailer bounces inbox`)")
            out.print(raw, markup=False, highlight=False, soft_wrap=True)
            return
        rows = bounce_store.inbound(session, category=category, limit=limit)
    if as_json:
        for row in rows:
            print_json(
                {
                    "id": row.id,
                    "category": row.category,
                    "received_at": row.received_at.isoformat(),
                    "envelope_to": row.envelope_to,
                    "sender": row.sender,
                    "subject": row.subject,
                    "message_id": row.message_id,
                    "delivery_id": row.delivery_id,
                    "summary": row.summary,
                }
            )
        return
    table = Table()
    for column in ("id", "category", "received", "to", "from", "subject", "delivery", "summary"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            row.category,
            row.received_at.strftime("%Y-%m-%d %H:%M"),
            row.envelope_to or "",
            row.sender or "",
            row.subject or "",
            str(row.delivery_id or ""),
            (row.summary or "")[:120],
        )
    out.print(table)
