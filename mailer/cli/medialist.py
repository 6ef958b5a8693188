"""Everyday media-list commands added to the ``contacts``, ``lists`` and ``segments``
groups: edit a contact, add a note, delete or rename a list, take people off it, delete a
segment. Thin: parse, call :mod:`mailer.audience.contact_edit` or :mod:`mailer.audience.lists`."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.audience import contact_edit, lists
from mailer.audience.suppressions import default_actor
from mailer.cli.common import JsonOpt, out, print_json, runtime
from mailer.cli.contacts import contacts_app, lists_app, segments_app
from mailer.domain.errors import InputError
from mailer.store.db import transaction

ActorOpt = Annotated[
    str | None, typer.Option("--as", help="Who is doing this, for the log (default: $MAILER_USER or your login).")
]


def register(app: typer.Typer) -> None:
    """The commands join the groups of :mod:`mailer.cli.contacts` when this module is imported."""


@contacts_app.command("edit")
def contacts_edit(
    email: str,
    first_name: Annotated[str | None, typer.Option(help='First name ("" clears).')] = None,
    last_name: Annotated[str | None, typer.Option(help='Last name ("" clears).')] = None,
    outlet: Annotated[str | None, typer.Option(help='Outlet ("" clears).')] = None,
    outlet_type: Annotated[str | None, typer.Option(help="One of the configured outlet types.")] = None,
    beats: Annotated[str | None, typer.Option(help="Beats, replacing the old ones: 'politics|business'.")] = None,
    tags: Annotated[str | None, typer.Option(help="Tags, replacing the old ones: 'vip|freelance'.")] = None,
    region: Annotated[str | None, typer.Option(help='Region ("" clears).')] = None,
    country: Annotated[str | None, typer.Option(help="2-letter ISO country code.")] = None,
    language: Annotated[str | None, typer.Option(help='Language ("" clears).')] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/London.")] = None,
    embargo_ok: Annotated[
        str | None, typer.Option(help='false: left out of embargoed releases (e.g. after breaking one); "" clears.')
    ] = None,
    attr: Annotated[
        list[str] | None, typer.Option("--attr", help="A free attribute NAME=VALUE (NAME= removes it); repeatable.")
    ] = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change fields of one contact, validated as an import row; every change is logged with who and when."""
    given = {
        "first_name": first_name,
        "last_name": last_name,
        "outlet": outlet,
        "outlet_type": outlet_type,
        "beats": beats,
        "tags": tags,
        "region": region,
        "country": country,
        "language": language,
        "timezone": timezone,
        "embargo_ok": embargo_ok,
    }
    fields = {k: v for k, v in given.items() if v is not None}
    attributes: dict[str, str] = {}
    for item in attr or []:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise InputError(f"--attr {item!r}: give NAME=VALUE")
        attributes[name.strip()] = value
    if not fields and not attributes:
        raise InputError("nothing to change: give at least one --field option (see --help)")
    who = actor or default_actor()
    with runtime() as rt, transaction(rt.sessions) as session:
        result = contact_edit.edit_contact(
            session,
            email,
            fields,
            attributes=attributes,
            actor=who,
            now=rt.clock(),
            outlet_types=rt.settings.contacts.outlet_types,
        )
    changes = [{"field": c.field, "old": c.old_value, "new": c.new_value} for c in result.changes]
    if as_json:
        print_json({"email": result.email, "changes": changes, "by": who})
        return
    if not changes:
        out.print(f"{result.email}: nothing changed", highlight=False)
    for c in changes:
        out.print(f"{result.email}: {c['field']}: {c['old'] or '(empty)'} → {c['new'] or '(empty)'}", highlight=False)


@contacts_app.command("note")
def contacts_note(email: str, text: str, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Add a note to a contact (kept with who wrote it and when; erased with the contact)."""
    who = actor or default_actor()
    with runtime() as rt, transaction(rt.sessions) as session:
        note_id = contact_edit.add_note(session, email, text, actor=who, now=rt.clock())
    if as_json:
        print_json({"email": email, "note": note_id, "by": who})
    else:
        out.print(f"noted on {email} by {who}", highlight=False)


@lists_app.command("delete")
def lists_delete(
    slug: str,
    force: Annotated[bool, typer.Option("--force", help="Delete even when a segment's rule names the list.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a list and its memberships (the contacts stay)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        members = lists.delete_list(session, slug, force=force)
    if as_json:
        print_json({"slug": slug, "deleted": True, "members": members})
    else:
        out.print(f"deleted list {slug} ({members} members; the contacts stay)", highlight=False)


@lists_app.command("rename")
def lists_rename(slug: str, name: str, as_json: JsonOpt = False) -> None:
    """Give a list a new display name (its slug, which segment rules use, stays)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        lists.rename_list(session, slug, name)
    if as_json:
        print_json({"slug": slug, "name": name.strip()})
    else:
        out.print(f"list {slug} is now called {name.strip()!r}", highlight=False)


@lists_app.command("remove")
def lists_remove(
    slug: str,
    emails: Annotated[list[str], typer.Argument(help="Addresses to take off the list.")],
    as_json: JsonOpt = False,
) -> None:
    """Take contacts off a list (they stay contacts, and on their other lists)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        result = lists.remove_members(session, slug, emails)
    if as_json:
        print_json({"slug": slug, "removed": result.removed, "not_members": result.not_members})
        return
    out.print(f"removed {len(result.removed)} from {slug}", highlight=False)
    for email in result.not_members:
        out.print(f"  {email}: was not on the list", highlight=False)


@segments_app.command("delete")
def segments_delete(slug: str, as_json: JsonOpt = False) -> None:
    """Delete a segment; refused while any release uses it."""
    with runtime() as rt, transaction(rt.sessions) as session:
        lists.delete_segment(session, slug)
    if as_json:
        print_json({"slug": slug, "deleted": True})
    else:
        out.print(f"deleted segment {slug}", highlight=False)
