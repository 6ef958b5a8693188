"""Commands for returned mail: parse notices, ingest mailboxes, run the receiver."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mailer.app import Runtime
from mailer.bounces.ingest import ImapOptions, ImapPoller, IngestSummary, connect_imap, detect_source, ingest_path
from mailer.bounces.parse import parse_message, report_to_json
from mailer.bounces.process import BounceProcessor
from mailer.bounces.receive import BounceServer, serve_bounces
from mailer.cli.common import JsonOpt, err, out, print_json, runtime
from mailer.errors import ConfigError, InputError
from mailer.tokens import Tokens

bounces_app = typer.Typer(
    help="Returned mail: parse notices, ingest mailboxes, run the receiver.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``bounces`` group to the root app."""
    app.add_typer(bounces_app, name="bounces")


def _processor(rt: Runtime) -> BounceProcessor:
    settings = rt.settings
    return BounceProcessor(
        rt.sessions,
        policy=settings.bounces,
        tokens=Tokens.from_settings(settings),
        bounce_domain=settings.sender.bounce_domain,
        clock=rt.clock,
    )


@bounces_app.command("parse")
def bounces_parse(
    files: Annotated[list[Path], typer.Argument(help="Message files (.eml) to parse.")],
    as_json: JsonOpt = False,
) -> None:
    """Parse notices and show what each says; needs no database or config.

    With --json: one object per line, {"file", "kind", "recipients": [{"address",
    "action", "status", "diagnostic", "class", "reason"}], "token", "original_message_id"}.
    """
    table = Table()
    for column in ("file", "kind", "recipient", "action", "status", "class", "reason"):
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
            table.add_row(str(file), report.kind.value, "", "", "", "", "")
        for r in report.recipients:
            table.add_row(
                str(file), report.kind.value, r.address, r.action, r.status or "", r.bounce_class.value, r.reason.value
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

    Only bounces+TOKEN@ and unsubscribe+TOKEN@ addresses at sender.bounce_domain with a
    genuine token are accepted; each message is committed before the 250 reply.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mailer").setLevel(logging.INFO)
    with runtime() as rt:
        settings = rt.settings.bounces
        lmtp = settings.lmtp and not smtp

        def ready(server: BounceServer) -> None:
            protocol = "LMTP" if server.lmtp else "SMTP"
            err.print(
                f"receiving bounces over {protocol} on {server.host}:{server.port} "
                f"for {rt.settings.sender.bounce_domain} (Ctrl-C to stop)",
                highlight=False,
            )

        serve_bounces(
            _processor(rt),
            host=host if host is not None else settings.listen_host,
            port=port if port is not None else settings.listen_port,
            lmtp=lmtp,
            on_ready=ready,
        )
    err.print("stopped")


@bounces_app.command("poll")
def bounces_poll(
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Read returned mail from the IMAP mailbox in [bounces.imap] (until Ctrl-C / SIGTERM)."""
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
