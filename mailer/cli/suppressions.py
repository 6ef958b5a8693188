"""Commands for suppressions (``mailer suppressions ...``) and ``mailer contacts erase``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailer.audience import erasure, suppressions
from mailer.audience.suppression_import import import_suppressions
from mailer.cli.audit import note as audit_note
from mailer.cli.common import JsonOpt, err, out, print_json, runtime
from mailer.cli.contacts import contacts_app
from mailer.domain.states import GLOBAL_SCOPE, SuppressionReason
from mailer.store.db import transaction

suppressions_app = typer.Typer(
    help="Addresses never to mail again (unsubscribed, bounced, complained, manual, erased).", no_args_is_help=True
)

ActorOpt = Annotated[
    str | None, typer.Option("--as", help="Who is doing this, for the log (default: $MAILER_USER or your login).")
]
ScopeOpt = Annotated[str, typer.Option("--scope", help="A client slug, or '*' for every client.")]


def register(app: typer.Typer) -> None:
    """Add this module's command group to the root app (``contacts erase`` joins the contacts group)."""
    app.add_typer(suppressions_app, name="suppressions")


def _reason(value: str | None) -> SuppressionReason | None:
    if value is None:
        return None
    try:
        return SuppressionReason(value)
    except ValueError:
        choices = ", ".join(r.value for r in SuppressionReason)
        raise typer.BadParameter(f"{value!r} is not one of: {choices}", param_hint="--reason") from None


@suppressions_app.command("list")
def suppressions_list(
    reason: Annotated[str | None, typer.Option(help="Only this reason (unsubscribed, hard_bounce, ...).")] = None,
    scope: Annotated[str | None, typer.Option(help="Only this scope: a client slug or '*'.")] = None,
    email: Annotated[str | None, typer.Option(help="Only this address (found even when erased).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppressions, oldest first, with reason, scope and source."""
    with runtime() as rt, transaction(rt.sessions) as session:
        rows: list[dict[str, str | None]] = [
            {
                "email": s.email,
                "email_hash": s.email_hash,
                "scope": s.scope,
                "reason": s.reason,
                "source": s.source,
                "created_at": s.created_at.isoformat(),
            }
            for s in suppressions.find(session, reason=_reason(reason), scope=scope, email=email)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no suppressions match")
        return
    table = Table("email", "scope", "reason", "source", "since")
    for r in rows:
        since = (r["created_at"] or "")[:19]
        table.add_row(r["email"] or "(erased)", r["scope"], r["reason"], r["source"], since)
    out.print(table)


@suppressions_app.command("add")
def suppressions_add(
    email: str,
    reason: Annotated[str, typer.Option(help="Why: manual, unsubscribed, hard_bounce, complaint.")] = "manual",
    scope: ScopeOpt = GLOBAL_SCOPE,
    note: Annotated[str | None, typer.Option(help="Free text kept with the suppression.")] = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppress an address, @domain.example (everyone there) or *.domain.example (it and its
    subdomains), for every client or one with --scope. Repeating is harmless."""
    chosen = _reason(reason)
    assert chosen is not None
    if chosen is SuppressionReason.ERASED:
        raise typer.BadParameter("use `mailer contacts erase EMAIL` to erase", param_hint="--reason")
    who = actor or suppressions.default_actor()
    with runtime() as rt, transaction(rt.sessions) as session:
        added = suppressions.suppress(
            session, email, reason=chosen, source=f"cli by {who}", now=rt.clock(), scope=scope, actor=who, note=note
        )
    if as_json:
        print_json({"email": email, "scope": scope, "reason": chosen.value, "added": added})
    elif added:
        out.print(f"suppressed {email} in scope {scope} ({chosen.value})", highlight=False)
    else:
        out.print(f"{email} was already suppressed in scope {scope}", highlight=False)


@suppressions_app.command("remove")
def suppressions_remove(
    email: str,
    reason: Annotated[str, typer.Option(help="Why the suppression is lifted (kept in the log).")],
    scope: ScopeOpt = GLOBAL_SCOPE,
    reconsent: Annotated[
        str | None,
        typer.Option(
            "--re-consent",
            help="How the person asked for mail again: required to lift a bounce or complaint suppression.",
        ),
    ] = None,
    actor: ActorOpt = None,
) -> None:
    """Lift a suppression in one scope. The reason and who did it are logged; a bounce or
    complaint is lifted only with --re-consent."""
    who = actor or suppressions.default_actor()
    with runtime() as rt, transaction(rt.sessions) as session:
        suppressions.lift(session, email, scope=scope, reason=reason, actor=who, now=rt.clock(), reconsent=reconsent)
    out.print(f"lifted the suppression of {email} in scope {scope}", highlight=False)


@suppressions_app.command("import")
def suppressions_import(
    file: Annotated[Path, typer.Argument(help="CSV with an email column (or one address/@domain a line).")],
    reason: Annotated[str, typer.Option(help="Reason where the file has none.")] = "manual",
    scope: ScopeOpt = GLOBAL_SCOPE,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppress every address or domain form in a CSV file; bad lines are reported, the rest land.

    Optional columns: reason, scope, note (our own export imports again)."""
    chosen = _reason(reason)
    assert chosen is not None
    who = actor or suppressions.default_actor()
    with runtime() as rt, transaction(rt.sessions) as session:
        result = import_suppressions(session, file, reason=chosen, scope=scope, actor=who, now=rt.clock())
    if as_json:
        print_json(result.as_json())
        return
    out.print(
        f"{file}: {result.added} suppressed, {result.existing} already were, {len(result.rejected)} rejected",
        highlight=False,
    )
    for line, why in result.rejected[:50]:
        out.print(f"  line {line}: {why}", markup=False, highlight=False)


@suppressions_app.command("export")
def suppressions_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Export every suppression as CSV; cells that would run as spreadsheet formulas are neutralized."""
    with runtime() as rt:
        audit_note(rt, "export", target="suppressions")
    with runtime() as rt, transaction(rt.sessions) as session:
        if output is None:
            suppressions.export_csv(session, sys.stdout)
            return
        tmp = output.with_name(output.name + ".part")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            count = suppressions.export_csv(session, fh)
        tmp.replace(output)
    err.print(f"wrote {count} suppressions to {output}")


@contacts_app.command("erase")
def contacts_erase(email: str, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Erase a contact's personal data (irreversible); the address stays suppressed by its hash."""
    who = actor or suppressions.default_actor()
    with runtime() as rt, transaction(rt.sessions) as session:
        result = erasure.erase_contact(session, email, actor=who, now=rt.clock())
    if as_json:
        print_json(
            {
                "email_hash": result.email_hash,
                "contact_erased": result.contact_id is not None,
                "deliveries": result.deliveries,
                "events": result.events,
                "suppressions": result.suppressions,
            }
        )
        return
    out.print(
        f"erased {email}: contact {'cleared' if result.contact_id is not None else 'not found'}, "
        f"{result.deliveries} deliveries and {result.events} events scrubbed; "
        "the address stays suppressed (reason erased)",
        highlight=False,
    )
