"""Commands for clients: the organisations releases are sent for (``mailer clients``;
added to the root app by :func:`mailer.cli.releases.register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mailer.cli.common import JsonOpt, out, print_json, runtime
from mailer.releases.clients import client_fields, create_client, load_client_file, update_client
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Client

clients_app = typer.Typer(help="The organisations releases are sent for.", no_args_is_help=True)


def _client_json(c: Client) -> dict[str, Any]:
    return {
        "slug": c.slug,
        "name": c.name,
        "from_name": c.from_name,
        "from_address": c.from_address,
        "reply_to": c.reply_to,
        "postal_address": c.postal_address,
        "disclosure": c.disclosure,
        "created_at": c.created_at.isoformat(),
    }


@clients_app.command("create")
def clients_create(
    slug: Annotated[str | None, typer.Argument(help="Short name, e.g. valdoria-mission (or from --file).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A client TOML file (options below override it).")] = None,
    name: Annotated[str | None, typer.Option(help="The organisation's name.")] = None,
    from_name: Annotated[str | None, typer.Option(help="Display name in From.")] = None,
    from_address: Annotated[str | None, typer.Option(help="Address in From.")] = None,
    reply_to: Annotated[str | None, typer.Option(help="Reply-To address.")] = None,
    postal_address: Annotated[str | None, typer.Option(help="Postal address for the footer (may span lines).")] = None,
    disclosure: Annotated[str | None, typer.Option(help="Disclosure statement every message must carry.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a client: sender identity, reply-to, postal address, disclosure."""
    data: dict[str, Any] = load_client_file(file) if file is not None else {}
    given = {
        "slug": slug,
        "name": name,
        "from_name": from_name,
        "from_address": from_address,
        "reply_to": reply_to,
        "postal_address": postal_address,
        "disclosure": disclosure,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    fields = client_fields(data)
    with runtime() as rt, transaction(rt.sessions) as session:
        client = create_client(session, fields, now=rt.clock())
    if as_json:
        print_json(_client_json(client))
    else:
        out.print(f"created client {client.slug} ({client.from_name} <{client.from_address}>)", highlight=False)


@clients_app.command("update")
def clients_update(
    slug: str,
    name: Annotated[str | None, typer.Option(help="The organisation's name.")] = None,
    from_name: Annotated[str | None, typer.Option(help="Display name in From.")] = None,
    from_address: Annotated[str | None, typer.Option(help="Address in From.")] = None,
    reply_to: Annotated[str | None, typer.Option(help='Reply-To address ("" removes it).')] = None,
    postal_address: Annotated[str | None, typer.Option(help="Postal address for the footer.")] = None,
    disclosure: Annotated[str | None, typer.Option(help='Disclosure statement ("" removes it).')] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a client's fields (validated as at creation; the slug stays). Approved
    releases of the client go back through approval when what they send changes."""
    changes = {
        "name": name,
        "from_name": from_name,
        "from_address": from_address,
        "reply_to": reply_to,
        "postal_address": postal_address,
        "disclosure": disclosure,
    }
    with runtime() as rt, transaction(rt.sessions) as session:
        client = update_client(session, slug, changes)
        data = _client_json(client)
    if as_json:
        print_json(data)
    else:
        out.print(f"updated client {slug}", highlight=False)


@clients_app.command("show")
def clients_show(slug: str, as_json: JsonOpt = False) -> None:
    """One client with every field."""
    with runtime() as rt, transaction(rt.sessions) as session:
        client = release_store.get_client(session, slug)
    data = _client_json(client)
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/]", "" if value is None else str(value))
    out.print(table)


@clients_app.command("list")
def clients_list(as_json: JsonOpt = False) -> None:
    """Every client."""
    with runtime() as rt, transaction(rt.sessions) as session:
        clients = release_store.all_clients(session)
    if as_json:
        print_json([_client_json(c) for c in clients])
        return
    table = Table("client", "name", "from")
    for c in clients:
        table.add_row(c.slug, c.name, f"{c.from_name} <{c.from_address}>")
    out.print(table if clients else "no clients yet: `mailer clients create SLUG ...`")
