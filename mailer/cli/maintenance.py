"""``mailer db backup FILE`` (added to the ``db`` group) and ``mailer purge``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, err, out, print_json, runtime
from mailer.cli.contacts import db_app
from mailer.ops.backup import backup_sqlite, parse_age, purge


def register(app: typer.Typer) -> None:
    app.command("purge")(purge_cmd)


@db_app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy (a single SQLite file).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace FILE if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy the SQLite database while it is in use (online backup API), checked whole.

    On PostgreSQL it prints the pg_dump command to use instead (exit code 2).
    """
    with runtime(check_schema=False) as rt:
        result = backup_sqlite(rt.engine, file, overwrite=overwrite)
    if as_json:
        print_json({"path": str(result.path), "bytes": result.size, "pages": result.pages})
    else:
        out.print(f"backed up to {result.path} ({result.size} bytes, integrity ok)", highlight=False)


def purge_cmd(
    older_than: Annotated[str, typer.Option("--older-than", help="Age, e.g. 90d, 36h, 2w.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be emptied.")] = False,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Empty stored raw texts of returned mail (bounce bodies, mail kept for staff) older
    than the age given; the events, statuses and suppressions stay."""
    age = parse_age(older_than)
    with runtime() as rt:
        result = purge(rt, age, actor=whoami(as_user), dry_run=dry_run)
    if as_json:
        print_json({"before": result.before.isoformat(), "dry_run": result.dry_run, "emptied": result.counts})
        return
    verb = "would empty" if dry_run else "emptied"
    parts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in result.counts.items())
    err.print(f"{verb} raw texts from before {result.before:%Y-%m-%d %H:%M} UTC: {parts}", highlight=False)
