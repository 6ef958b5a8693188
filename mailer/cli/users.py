"""``mailer users ...``: staff accounts for the web UI and API tokens."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mailer.accounts import api_tokens, passwords, permits, signin, users
from mailer.cli.actor import AsOpt
from mailer.cli.audit import note as audit_note
from mailer.cli.common import JsonOpt, err, out, print_json, runtime
from mailer.domain.errors import InputError
from mailer.store.db import transaction

users_app = typer.Typer(help="Staff accounts: sign-in for the web UI and API tokens.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``mailer users`` to the root app."""
    app.add_typer(users_app, name="users")


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InputError("--password-stdin: no password on standard input")
        return line
    if sys.stdin.isatty():
        value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return value
    return None


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's address (their sign-in name).")],
    role: Annotated[str, typer.Option("--role", help="admin, publicist, approver or viewer.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    as_user: AsOpt = None,
) -> None:
    """Add a user. On a terminal the password is prompted for; without a terminal and
    without --password-stdin the account can use an API token but cannot sign in."""
    parsed_role = permits.parse_role(role)
    password = _read_password(password_stdin)
    with runtime() as rt, transaction(rt.sessions) as session:
        user = users.add_user(session, email, role=parsed_role, name=name, password=password, now=rt.clock())
    audit_note(rt, "user.add", target=user.email, detail=f"role {user.role.value}", as_user=as_user)
    note = "" if password is not None else " (no password: API token only)"
    out.print(f"added {escape(user.email)} as {user.role.value}{note}", highlight=False)


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """Every user with role and state."""
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = users.list_users(session)
    if as_json:
        print_json(
            [
                {
                    "email": u.email,
                    "name": u.name,
                    "role": u.role,
                    "active": u.active,
                    "password": u.has_password,
                    "token": u.has_token,
                    "token_scope": u.token_scope,
                    "token_expires_at": u.token_expires_at.isoformat() if u.token_expires_at else None,
                    "created_at": u.created_at.isoformat(),
                }
                for u in rows
            ]
        )
        return
    table = Table("email", "name", "role", "active", "password", "token")
    for u in rows:
        token = "no"
        if u.has_token:
            until = f", until {u.token_expires_at:%Y-%m-%d %H:%M} UTC" if u.token_expires_at else ""
            token = f"{u.token_scope or 'read'}{until}"
        table.add_row(
            escape(u.email),
            escape(u.name or ""),
            u.role,
            "yes" if u.active else "no",
            "yes" if u.has_password else "no",
            token,
        )
    out.print(table)


@users_app.command("token")
def users_token(
    email: Annotated[str, typer.Argument(help="The user's address.")],
    scope: Annotated[
        str, typer.Option("--scope", help="read (GET routes only) or write (also pause/resume, within the role).")
    ] = "read",
    expires_in: Annotated[
        int, typer.Option("--expires-in", help="Days until the token stops working (0: it never expires).")
    ] = 90,
    as_user: AsOpt = None,
) -> None:
    """Print a new API token (shown once; any earlier token stops working)."""
    parsed_scope = api_tokens.parse_scope(scope)
    if not 0 <= expires_in <= 3650:
        raise InputError("--expires-in: give 0 (never) or 1 to 3650 days")
    with runtime() as rt, transaction(rt.sessions) as session:
        expires_at = rt.clock() + timedelta(days=expires_in) if expires_in else None
        token = api_tokens.issue_token(session, email, scope=parsed_scope, expires_at=expires_at)
    audit_note(rt, "user.token", target=email, detail=f"{parsed_scope.value} token", as_user=as_user)
    sys.stdout.write(token + "\n")
    until = f"until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "with no expiry"
    err.print(
        f"{parsed_scope.value} token, valid {until}; store it now: it is not shown again "
        "(the database keeps only its SHA-256)",
        highlight=False,
    )


@users_app.command("passwd")
def users_passwd(
    email: Annotated[str, typer.Argument(help="The user's address.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    as_user: AsOpt = None,
) -> None:
    """Set a user's password (prompted on a terminal); every open session of theirs ends."""
    password = _read_password(password_stdin)
    if password is None:
        raise InputError("no password: run on a terminal or pass --password-stdin")
    hashed = passwords.hash_password(password)
    with runtime() as rt, transaction(rt.sessions) as session:
        ended = signin.change_password(session, email, hashed, now=rt.clock())
    audit_note(rt, "user.password", target=email, as_user=as_user)
    out.print(f"password changed for {escape(email)}; {ended} open session(s) ended", highlight=False)


@users_app.command("disable")
def users_disable(email: Annotated[str, typer.Argument(help="The user's address.")], as_user: AsOpt = None) -> None:
    """Disable a user: no sign-in, no API token; their open sessions end at once."""
    with runtime() as rt, transaction(rt.sessions) as session:
        ended = users.disable_user(session, email, now=rt.clock())
    audit_note(rt, "user.disable", target=email, as_user=as_user)
    out.print(f"disabled {escape(email)}; {ended} open session(s) ended", highlight=False)
