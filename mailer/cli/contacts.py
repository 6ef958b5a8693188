"""Commands for the database, contacts, lists and segments."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mailer import store
from mailer.audience import contacts
from mailer.cli.audit import note as audit_note
from mailer.cli.common import JsonOpt, err, out, print_json, runtime
from mailer.domain.errors import InputError
from mailer.store import contact_journal, db
from mailer.store import suppressions as suppression_store
from mailer.store.db import transaction
from mailer.store.segment_checks import unknown_names
from mailer.store.segments import check_rule

db_app = typer.Typer(help="Create or upgrade the database schema.", no_args_is_help=True)
contacts_app = typer.Typer(help="Import, export and inspect contacts (journalists).", no_args_is_help=True)
lists_app = typer.Typer(help="Named sets of contacts. Without a subcommand: every list with counts.")
segments_app = typer.Typer(help="Saved rules over contacts, evaluated at send time.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's command groups to the root app."""
    app.add_typer(db_app, name="db")
    app.add_typer(contacts_app, name="contacts")
    app.add_typer(lists_app, name="lists", invoke_without_command=True)
    app.add_typer(segments_app, name="segments")


# --- db ---------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema, or upgrade it to the newest version (SQLite or PostgreSQL)."""
    with runtime(check_schema=False) as rt:
        rev = db.upgrade(rt.engine)
    out.print(f"database at revision {rev} ({rt.engine.url.render_as_string(hide_password=True)})")


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Show the schema revision in the database and the newest one this version knows."""
    with runtime(check_schema=False) as rt:
        have, head = db.current_revision(rt.engine), db.head_revision()
    if as_json:
        print_json({"current": have, "head": head, "up_to_date": have == head})
    else:
        out.print(
            f"current {have or '(empty)'}, newest {head}" + ("" if have == head else " — run `mailer db upgrade`")
        )


# --- contacts ---------------------------------------------------------------------------


@contacts_app.command("import")
def contacts_import(
    file: Annotated[Path, typer.Argument(help="CSV export (UTF-8/UTF-16/Windows-1252; ',' or ';').")],
    list_slug: Annotated[str, typer.Option("--list", help="List to add the contacts to (created if missing).")],
    encoding: Annotated[
        str | None,
        typer.Option(help="Read the file in this encoding (utf-8, cp1252, utf-16, ...) instead of detecting it."),
    ] = None,
    blank_clears: Annotated[
        bool, typer.Option("--blank-clears", help="An empty cell clears the stored value (default: keeps it).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import contacts from a CSV file: bad rows are reported, good rows always land.

    Columns: email, first_name, last_name, outlet, outlet_type (setting contacts.outlet_types), beats, region, country,
    language, timezone, tags; any other column becomes a free attribute. Counts:
    accepted = new contacts, updated = contacts that already existed. The encoding is
    decided per file (BOM, else UTF-8 unless most non-ASCII lines are not, else
    Windows-1252); lines with bytes it cannot read are rejected, never guessed.
    """
    with runtime() as rt:
        run = partial(
            contacts.import_csv,
            rt.sessions,
            file,
            list_slug=list_slug,
            encoding=encoding,
            blank_clears=blank_clears,
            outlet_types=rt.settings.contacts.outlet_types,
        )
        if as_json or not err.is_terminal:
            result = run(now=rt.clock())
        else:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err
            ) as bar:
                task = bar.add_task("importing", total=file.stat().st_size if file.exists() else None)

                def advance(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                def phase(what: str) -> None:
                    bar.update(task, description=what)

                result = run(now=rt.clock(), progress=advance, phase=phase)
    if as_json:
        print_json(result.as_json())
        return
    out.print(
        f"{file} (read as {result.encoding}): [green]{result.accepted} new[/], {result.updated} updated, "
        f"[{'red' if result.rejected_total else 'green'}]{result.rejected_total} rejected[/] → list {list_slug}"
    )
    for rej in result.rejected[:50]:
        out.print(f"  line {rej.line}: {rej.reason}", markup=False, highlight=False)
    if result.rejected_total > 50:
        out.print(f"  ... and {result.rejected_total - 50} more (use --json for all)")
    for warning in result.warnings[:50]:
        out.print(f"  line {warning.line}: warning: {warning.reason}", markup=False, highlight=False)
    if len(result.warnings) > 50:
        out.print(f"  ... and {len(result.warnings) - 50} more warnings (use --json for all)")


@contacts_app.command("export")
def contacts_export(
    list_slug: Annotated[str | None, typer.Option("--list", help="Only members of this list.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    bom: Annotated[
        bool, typer.Option("--bom", help="Start with a UTF-8 byte-order mark so that Excel shows accents right.")
    ] = False,
) -> None:
    """Export contacts as CSV, one column per attribute; re-imports unchanged. Cells that
    would run as spreadsheet formulas are neutralized."""
    with runtime() as rt:
        audit_note(rt, "export", target=f"contacts (list {list_slug})" if list_slug else "contacts")
        if output is None:
            contacts.export_csv(rt.sessions, sys.stdout, list_slug=list_slug, bom=bom)
            return
        tmp = output.with_name(output.name + ".part")
        try:
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                count = contacts.export_csv(rt.sessions, fh, list_slug=list_slug, bom=bom)
            tmp.replace(output)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(f"--output {output}: cannot write: {exc.strerror or exc}") from exc
    err.print(f"wrote {count} contacts to {output}")


@contacts_app.command("show")
def contacts_show(email: str, as_json: JsonOpt = False) -> None:
    """Show one contact: fields, beats, tags, lists, suppression."""
    with runtime() as rt, transaction(rt.sessions) as session:
        normalized = contacts.normalize_email(email)
        contact = store.get_contact(session, normalized)
        beats, tags, lists = store.contact_labels(session, contact.id)
        suppressed = suppression_store.is_suppressed(session, contact.email or "")
        notes = [f"{n.at:%Y-%m-%d %H:%M} {n.author}: {n.body}" for n in contact_journal.notes(session, contact.id)]
    data = {
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "outlet": contact.outlet,
        "outlet_type": contact.outlet_type,
        "beats": beats,
        "region": contact.region,
        "country": contact.country,
        "language": contact.language,
        "timezone": contact.timezone,
        "tags": tags,
        "attributes": contact.attributes,
        "lists": lists,
        "suppressed": suppressed,
        "notes": notes,
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else json.dumps(value) if isinstance(value, dict) else value
        table.add_row(f"[bold]{key}[/]", "" if shown is None else str(shown))
    out.print(table)


# --- lists ------------------------------------------------------------------------------


def _print_lists(slug: str | None, as_json: bool) -> None:
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = store.list_summaries(session, slug)
    if as_json:
        data = [{"slug": r.slug, "name": r.name, "members": r.members, "suppressed": r.suppressed} for r in rows]
        print_json(data[0] if slug else data)
        return
    table = Table("list", "name", "members", "suppressed")
    for r in rows:
        table.add_row(r.slug, r.name, str(r.members), str(r.suppressed))
    out.print(table if rows else "no lists yet: `mailer contacts import FILE --list SLUG`")


@lists_app.callback()
def lists_main(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every list with its member count."""
    if ctx.invoked_subcommand is None:
        _print_lists(None, as_json)


@lists_app.command("create")
def lists_create(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an empty list."""
    contacts.check_slug(slug, "list")
    with runtime() as rt, transaction(rt.sessions) as session:
        store.create_list(session, slug, name=name, now=rt.clock())
    if as_json:
        print_json({"slug": slug, "name": name or slug})
    else:
        out.print(f"created list {slug}")


@lists_app.command("show")
def lists_show(slug: str, as_json: JsonOpt = False) -> None:
    """One list with its counts."""
    _print_lists(slug, as_json)


# --- segments ---------------------------------------------------------------------------


@segments_app.command("create")
def segments_create(
    slug: str,
    rule: Annotated[str, typer.Option(help="e.g. 'list:national-press AND beat:foreign-policy'.")],
    description: Annotated[str | None, typer.Option(help="What the segment is for.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create (or replace the rule of) a segment. The rule is checked before it is saved."""
    contacts.check_slug(slug, "segment")
    with runtime() as rt, transaction(rt.sessions) as session:
        check_rule(rule, outlet_types=rt.settings.contacts.outlet_types)
        store.save_segment(session, slug, rule, description=description, now=rt.clock())
        count = store.segment_count(session, rule)
        warnings = unknown_names(session, rule)
    if as_json:
        print_json({"slug": slug, "rule": rule, "count": count, **({"warnings": warnings} if warnings else {})})
    else:
        out.print(f"segment {slug}: {count} contacts match now", highlight=False)
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)


@segments_app.command("show")
def segments_show(
    slug: str,
    sample: Annotated[int, typer.Option(help="How many matching contacts to show.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """A segment's rule, how many contacts it selects now, and a sample."""
    with runtime() as rt, transaction(rt.sessions) as session:
        seg = store.get_segment(session, slug)
        count = store.segment_count(session, seg.rule)
        people = store.segment_sample(session, seg.rule, sample)
    if as_json:
        print_json(
            {
                "slug": seg.slug,
                "rule": seg.rule,
                "description": seg.description,
                "count": count,
                "sample": [
                    {"email": c.email, "name": _name(c.first_name, c.last_name), "outlet": c.outlet} for c in people
                ],
            }
        )
        return
    out.print(f"[bold]{seg.slug}[/]: {seg.rule}  →  {count} contacts", highlight=False)
    table = Table("email", "name", "outlet")
    for c in people:
        table.add_row(c.email or "", _name(c.first_name, c.last_name), c.outlet or "")
    out.print(table)


@segments_app.command("list")
def segments_list(as_json: JsonOpt = False) -> None:
    """Every segment with its current count."""
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = [(s, store.segment_count(session, s.rule)) for s in store.all_segments(session)]
    if as_json:
        print_json([{"slug": s.slug, "rule": s.rule, "count": n} for s, n in rows])
        return
    table = Table("segment", "rule", "contacts")
    for s, n in rows:
        table.add_row(s.slug, s.rule, str(n))
    out.print(table)


def _name(first: str | None, last: str | None) -> str:
    return " ".join(p for p in (first, last) if p)
