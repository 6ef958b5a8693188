"""``mailer audit``: the audit log of staff actions (list, CSV export), and
:func:`note`, which the other commands call to record what a person did."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.table import Table

from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, err, out, print_json, runtime
from mailer.domain.errors import InputError
from mailer.runtime import Runtime
from mailer.store import audit
from mailer.store.db import transaction
from mailer.store.ledger.paging import read_only

audit_app = typer.Typer(help="The audit log of staff actions (admins).", no_args_is_help=True)

_COLUMNS = ("id", "at", "actor", "action", "target", "ip", "detail")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


def note(
    rt: Runtime, action: str, *, target: str | None = None, detail: str | None = None, as_user: str | None = None
) -> None:
    """Writes: record that the person running this command (``--as``, ``$MAILER_USER``
    or the login name) did ``action`` (in a transaction of its own)."""
    with transaction(rt.sessions) as session:
        audit.record(session, actor=whoami(as_user), action=action, target=target, detail=detail, now=rt.clock())


def _write_csv(rt: Runtime, fh: IO[str], *, actor: str | None, action: str | None) -> int:
    writer = csv.writer(fh)
    writer.writerow(_COLUMNS)
    count, after = 0, None
    while True:
        with read_only(rt.sessions) as session:
            page = audit.audit_page(session, actor=actor, action=action, after=after, limit=500)
        for e in page.rows:
            writer.writerow([e.id, e.at.isoformat(), e.actor, e.action, e.target or "", e.ip or "", e.detail or ""])
        count += len(page.rows)
        if page.next_after is None:
            return count
        after = page.next_after


@audit_app.command("list")
def audit_list(
    actor: Annotated[str | None, typer.Option("--actor", help="Only this person.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action (ending in '.': a family, e.g. 'user.').")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="How many entries.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Staff actions, newest first: sign-ins, exports, user changes, suppression removals,
    approvals, schedule changes, settings.

    With --json: a list of {"id", "at", "actor", "action", "target", "ip", "detail"}.
    """
    with runtime() as rt, read_only(rt.sessions) as session:
        page = audit.audit_page(session, actor=actor, action=action, limit=limit)
    if as_json:
        print_json(
            [
                {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action}
                | {"target": e.target, "ip": e.ip, "detail": e.detail}
                for e in page.rows
            ]
        )
        return
    table = Table(*_COLUMNS[1:])
    for e in page.rows:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target or "", e.ip or "cli", (e.detail or "")[:80]
        )
    out.print(table)


@audit_app.command("export")
def audit_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this person.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action (or family ending in '.').")] = None,
    as_user: AsOpt = None,
) -> None:
    """The whole audit log (or the filtered part) as CSV, newest first; the export is itself audited."""
    with runtime() as rt:
        note(rt, "export", target="audit log", as_user=as_user)
        if output is None:
            _write_csv(rt, sys.stdout, actor=actor, action=action)
            return
        try:
            with output.open("w", encoding="utf-8", newline="") as fh:
                count = _write_csv(rt, fh, actor=actor, action=action)
        except OSError as exc:
            raise InputError(f"--output {output}: cannot write: {exc.strerror or exc}") from exc
    err.print(f"wrote {count} audit entries to {output}")
