"""`mailer demo`: the main job end to end on the embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailer.cli.common import STATE, err, out, runtime
from mailer.domain.states import DeliveryStatus


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("capture")(capture)


def capture(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: smtp.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: smtp.port).")] = None,
    maildir: Annotated[
        Path | None, typer.Option(help="Maildir to file messages in (default: paths.capture_maildir).")
    ] = None,
) -> None:
    r"""Run a local SMTP server that accepts everything and files it in a Maildir (for trying
    mailer without a relay: point \[smtp] at it and run `mailer run`). Ctrl-C stops it."""
    from mailer.smtp.capture import CaptureServer, serve_capture

    settings = STATE.settings
    folder = maildir or settings.paths.capture_maildir

    def ready(server: CaptureServer) -> None:
        err.print(f"capturing mail on {server.host}:{server.port} into {folder}/ (Ctrl-C to stop)", highlight=False)

    serve_capture(host or settings.smtp.host, port or settings.smtp.port, folder, on_ready=ready)
    err.print("stopped")


def demo(
    lists_dir: Annotated[Path, typer.Option(help="Folder with the sample CSV lists.")] = Path("lists"),
    work_dir: Annotated[Path, typer.Option(help="Where previews are written.")] = Path("var"),
) -> None:
    """Import, write a release, preview, approve, send through a local capture server, report."""
    from mailer.demo.run import run_demo

    with runtime(check_schema=False) as rt:
        result = run_demo(rt, lists_dir, work_dir)
        url = rt.engine.url.render_as_string(hide_password=True)
    out.rule("[bold]mailer demo[/]")
    out.print(f"database: {url}")
    for imp in result.imports:
        r = imp.result
        out.print(f"imported {imp.file}: {r.accepted} new, {r.updated} updated, {r.rejected_total} rejected")
    out.print(f"release {result.release_id}: created, previewed, submitted, approved by a second person, sent")
    for path in result.previews:
        out.print(f"  preview: {path}")
    report = result.report
    statuses = [s.value for s in DeliveryStatus if s.value in report["counts"]]
    table = Table(f"release {report['release']} ({report['status']})", *statuses, "total")
    table.add_row("all", *(str(report["counts"][s]) for s in statuses), str(report["total"]))
    for name, counts in sorted(report["segments"].items()):
        table.add_row(f"segment {name}", *(str(counts.get(s, 0)) for s in statuses), str(sum(counts.values())))
    out.print(table)
    out.print(
        f"{result.captured} messages captured in the Maildir {result.maildir}/ "
        f"(open {result.maildir}/new/ in any mail client or text editor)"
    )
    rid = result.release_id
    base = rt.settings.web.base_url.rstrip("/")
    out.print(
        f"newsroom: {base}/newsroom/valdoria-mission/{rid} (run `mailer web`; open it from a message's "
        '"View online" link until the embargo lifts, then it is public)'
    )
    prog = _program()
    out.print(f"more: {prog} --config config.example.toml report {rid}   (or: log --release {rid})")


def _program() -> str:
    """How to call this command again from here (``.venv/bin/mailer`` after `make demo`)."""
    prog = Path(sys.argv[0])
    try:
        return str(prog.resolve().relative_to(Path.cwd())) if prog.name == "mailer" else "mailer"
    except ValueError:
        return "mailer"
