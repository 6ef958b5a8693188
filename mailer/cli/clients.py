"""Commands for clients: the organisations releases are sent for, and the identity
they send as (``mailer clients``; added to the root app by
:func:`mailer.cli.releases.register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mailer.accounts import permits
from mailer.cli.actor import AsOpt, whoami
from mailer.cli.common import JsonOpt, out, print_json, runtime
from mailer.config import Settings
from mailer.releases import dns
from mailer.releases.clients import (
    add_dkim_key,
    client_changes,
    client_fields,
    create_client,
    load_client_file,
    update_client,
)
from mailer.releases.identity import identity_for
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Client

clients_app = typer.Typer(
    help="The organisations releases are sent for, and the identity they send as.", no_args_is_help=True
)

#: How :func:`resolver` answers `clients dns --check` (the tests put a stub here).
resolver_factory: Any = dns.SystemResolver


def _client_json(c: Client, settings: Settings | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": c.slug,
        "name": c.name,
        "from_name": c.from_name,
        "from_address": c.from_address,
        "reply_to": c.reply_to,
        "postal_address": c.postal_address,
        "disclosure": c.disclosure,
        "created_at": c.created_at.isoformat(),
        "dkim_domain": c.dkim_domain,
        "dkim_selector": c.dkim_selector,
        "dkim_key_file": c.dkim_key_file,
        "dkim_other_keys": c.dkim_other_keys or {},
        "bounce_domain": c.bounce_domain,
        "message_id_domain": c.message_id_domain,
        "alignment_override": c.alignment_override,
        "alignment_override_by": c.alignment_override_by,
        "alignment_override_at": c.alignment_override_at.isoformat() if c.alignment_override_at else None,
    }
    if settings is not None:
        ident = identity_for(c, settings)
        data["identity"] = {
            "from_domain": ident.from_domain,
            "dkim": ident.dkim_source,
            "dkim_domain": ident.dkim_domain,
            "dkim_selector": ident.dkim.selector if ident.dkim else None,
            "bounce_domain": ident.bounce_domain,
            "message_id_domain": ident.message_id_domain,
            "aligned_by": list(ident.aligned_by()),
        }
    return data


DkimDomainOpt = Annotated[str | None, typer.Option("--dkim-domain", help="DKIM d= domain (default: the From domain).")]
DkimSelectorOpt = Annotated[str | None, typer.Option("--dkim-selector", help="DKIM selector of the key that signs.")]
DkimKeyFileOpt = Annotated[
    Path | None, typer.Option("--dkim-key-file", help="PEM RSA private key that signs this client's mail.")
]
BounceDomainOpt = Annotated[
    str | None,
    typer.Option("--bounce-domain", help="Return-path domain: bounces+TOKEN@ it (default: bounces.<From domain>)."),
]
MessageIdDomainOpt = Annotated[
    str | None, typer.Option("--message-id-domain", help="Domain of Message-IDs and List-Id (default: From domain).")
]


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
    dkim_domain: DkimDomainOpt = None,
    dkim_selector: DkimSelectorOpt = None,
    dkim_key_file: DkimKeyFileOpt = None,
    bounce_domain: BounceDomainOpt = None,
    message_id_domain: MessageIdDomainOpt = None,
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
        "dkim_domain": dkim_domain,
        "dkim_selector": dkim_selector,
        "dkim_key_file": str(dkim_key_file) if dkim_key_file is not None else None,
        "bounce_domain": bounce_domain,
        "message_id_domain": message_id_domain,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    fields = client_fields(data)
    with runtime() as rt, transaction(rt.sessions) as session:
        client = create_client(session, fields, now=rt.clock())
        data = _client_json(client, rt.settings)
        problem = identity_for(client, rt.settings).alignment_problem()
    if as_json:
        print_json(data)
        return
    out.print(f"created client {data['slug']} ({data['from_name']} <{data['from_address']}>)", highlight=False)
    _print_identity(data["identity"], problem)


@clients_app.command("update")
def clients_update(
    slug: Annotated[str, typer.Argument(help="The client.")],
    file: Annotated[Path | None, typer.Option("--file", help="A client TOML file with the keys to change.")] = None,
    name: Annotated[str | None, typer.Option(help="The organisation's name.")] = None,
    from_name: Annotated[str | None, typer.Option(help="Display name in From.")] = None,
    from_address: Annotated[str | None, typer.Option(help="Address in From.")] = None,
    reply_to: Annotated[str | None, typer.Option(help="Reply-To address ('' = none).")] = None,
    postal_address: Annotated[str | None, typer.Option(help="Postal address for the footer.")] = None,
    disclosure: Annotated[str | None, typer.Option(help="Disclosure statement ('' = none).")] = None,
    dkim_domain: DkimDomainOpt = None,
    dkim_selector: DkimSelectorOpt = None,
    dkim_key_file: DkimKeyFileOpt = None,
    bounce_domain: BounceDomainOpt = None,
    message_id_domain: MessageIdDomainOpt = None,
    retire_selector: Annotated[
        str | None, typer.Option("--retire-selector", help="Stop publishing this (not signing) key.")
    ] = None,
    alignment_override: Annotated[
        str | None,
        typer.Option("--alignment-override", help="Why submit may skip the DMARC alignment check (recorded)."),
    ] = None,
    no_alignment_override: Annotated[
        bool, typer.Option("--no-alignment-override", help="Check alignment at submit again.")
    ] = False,
    actor: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a client: any field, its sending identity ('' resets a field to its default),
    a DKIM key rotation (--dkim-selector of a key made by `dkim-key`), the alignment override."""
    data: dict[str, Any] = load_client_file(file) if file is not None else {}
    given = {
        "name": name,
        "from_name": from_name,
        "from_address": from_address,
        "reply_to": reply_to,
        "postal_address": postal_address,
        "disclosure": disclosure,
        "dkim_domain": dkim_domain,
        "dkim_selector": dkim_selector,
        "dkim_key_file": str(dkim_key_file) if dkim_key_file is not None else None,
        "bounce_domain": bounce_domain,
        "message_id_domain": message_id_domain,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    with runtime() as rt, transaction(rt.sessions) as session:
        client = release_store.get_client(session, slug)
        who = ""
        if alignment_override is not None or no_alignment_override:
            who = permits.cli_actor(session, whoami(actor), permits.Action.WRITE)
        changes = client_changes(
            client,
            data,
            retire_selector=retire_selector,
            alignment_override=alignment_override,
            clear_alignment_override=no_alignment_override,
            actor=who,
            now=rt.clock(),
        )
        update_client(session, client, changes)
        shown = _client_json(client, rt.settings)
        problem = identity_for(client, rt.settings).alignment_problem()
    if as_json:
        print_json({**shown, "changed": sorted(changes)})
        return
    changed = ", ".join(sorted(changes)) or "nothing"
    out.print(f"client {slug}: changed {changed}", highlight=False)
    _print_identity(shown["identity"], problem if not shown["alignment_override"] else None)


def _print_identity(identity: dict[str, Any], problem: str | None) -> None:
    dkim = identity["dkim"]
    signs = "unsigned" if dkim == "none" else f"{dkim} key, d={identity['dkim_domain']} s={identity['dkim_selector']}"
    out.print(
        f"sends as {identity['from_domain']}: DKIM {signs}; return path bounces+TOKEN@{identity['bounce_domain']}; "
        f"Message-IDs @{identity['message_id_domain']}",
        highlight=False,
        markup=False,
    )
    if problem:
        out.print(f"warning: {problem}", highlight=False, markup=False)


@clients_app.command("show")
def clients_show(slug: str, as_json: JsonOpt = False) -> None:
    """One client with every field, and the identity it sends as."""
    with runtime() as rt, transaction(rt.sessions) as session:
        client = release_store.get_client(session, slug)
        data = _client_json(client, rt.settings)
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        if key == "identity":
            continue
        table.add_row(f"[bold]{key}[/]", "" if value is None else str(value))
    out.print(table)
    _print_identity(data["identity"], None)


@clients_app.command("list")
def clients_list(as_json: JsonOpt = False) -> None:
    """Every client."""
    with runtime() as rt, transaction(rt.sessions) as session:
        clients = release_store.all_clients(session)
        data = [_client_json(c, rt.settings) for c in clients]
    if as_json:
        print_json(data)
        return
    table = Table("client", "name", "from", "return path", "DKIM")
    for c in data:
        ident = c["identity"]
        dkim = "-" if ident["dkim"] == "none" else f"{ident['dkim_selector']}._domainkey.{ident['dkim_domain']}"
        table.add_row(c["slug"], c["name"], f"{c['from_name']} <{c['from_address']}>", ident["bounce_domain"], dkim)
    out.print(table if data else "no clients yet: `mailer clients create SLUG ...`")


@clients_app.command("dkim-key")
def clients_dkim_key(
    slug: Annotated[str, typer.Argument(help="The client.")],
    selector: Annotated[str | None, typer.Option("--selector", help="Selector (default: mailerYYYYMM).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a 2048-bit DKIM key for the client in \\[dkim] key_dir and print its TXT record.
    The first key signs at once; another one (a rotation) signs after
    `mailer clients update SLUG --dkim-selector SELECTOR`, once DNS has its record."""
    with runtime() as rt, transaction(rt.sessions) as session:
        client = release_store.get_client(session, slug)
        key = add_dkim_key(session, client, rt.settings, selector=selector, now=rt.clock())
    if as_json:
        print_json(
            {
                "selector": key.selector,
                "key_file": str(key.key_file),
                "name": key.record_name,
                "type": "TXT",
                "value": key.txt,
                "signing": key.signing,
            }
        )
        return
    out.print(f"wrote {key.key_file} (mode 0600); publish:", highlight=False)
    out.print(f"{key.record_name}. IN TXT {dns.txt_strings(key.txt)}", highlight=False, markup=False, soft_wrap=True)
    if not key.signing:
        out.print(
            f"it does not sign yet: once DNS answers it, `mailer clients update {slug} --dkim-selector {key.selector}`",
            highlight=False,
            markup=False,
        )


@clients_app.command("dns")
def clients_dns(
    slug: Annotated[str, typer.Argument(help="The client.")],
    check: Annotated[bool, typer.Option("--check", help="Compare with what DNS answers.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every DNS record the client's domains need: DKIM key(s), SPF of the return-path
    domain, a DMARC starter record, the MX of the return-path domain; --check asks DNS.
    With --check the exit code is 1 when a record is missing or different."""
    with runtime() as rt, transaction(rt.sessions) as session:
        client = release_store.get_client(session, slug)
        identity = identity_for(client, rt.settings)
        records = dns.records_for(identity, rt.settings)
    checks = dns.check_records(records, resolver_factory()) if check else None
    if as_json:
        rows: list[dict[str, Any]] = [
            {"name": r.name, "type": r.type, "value": r.value, "purpose": r.purpose} for r in records
        ]
        if checks is not None:
            for row, c in zip(rows, checks, strict=True):
                row.update(status=c.status, found=list(c.found))
        print_json(rows)
    else:
        for i, r in enumerate(records):
            value = dns.txt_strings(r.value) if r.type == "TXT" else r.value
            status = f"[{checks[i].status}] " if checks is not None else ""
            out.print(f"; {status}{r.purpose}", highlight=False, markup=False)
            out.print(f"{r.name}. IN {r.type} {value}", highlight=False, markup=False, soft_wrap=True)
            if checks is not None and checks[i].status == "different":
                for found in checks[i].found:
                    out.print(f";   DNS has: {found}", highlight=False, markup=False, soft_wrap=True)
    if checks is not None and any(c.status != "ok" for c in checks):
        raise typer.Exit(1)
