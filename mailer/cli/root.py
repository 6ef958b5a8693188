"""The ``mailer`` command. Thin: parse, call one function, present (Rich or ``--json``).

The command tree is built from the command modules (each adds its groups with
``register(app)``). A command line that names its command imports only the modules that
command lives in (:data:`HOMES`): ``mailer run`` does not load the web UI, the bounce
parsers or the release editor (a worker's start-up: ~8% less CPU, 97 → 90 MB). ``app`` (this
module's attribute) is the whole tree, built on first use, for ``--help`` and the tests.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from mailer import __version__
from mailer.cli.common import STATE, err, out
from mailer.domain.errors import MailerError

HELP = "mailer: press releases to journalists, approved, personalized, delivered exactly once."

# Each command module adds its groups with register(app); listed in --help order.
COMMAND_MODULES = (
    "demo",
    "contacts",
    "medialist",
    "releases",
    "delivery",
    "suppressions",
    "bounces",
    "replies",
    "web",
    "users",
)
# Running it as a service (issue 19): doctor, audit log, webhooks, db backup, purge.
OPS_COMMAND_MODULES = ("doctor", "audit", "webhooks", "maintenance")

#: The modules each top-level command's tree comes from: the one that registers it and
#: those that add subcommands to its group (``contacts edit`` is in medialist, ``contacts
#: erase`` in suppressions, ``db backup`` in maintenance). tests/cli/test_lazy_tree.py
#: checks every command against the whole tree.
HOMES: dict[str, tuple[str, ...]] = {
    "demo": ("demo",),
    "capture": ("demo",),
    "db": ("contacts", "maintenance"),
    "contacts": ("contacts", "medialist", "suppressions"),
    "lists": ("contacts", "medialist"),
    "segments": ("contacts", "medialist"),
    "releases": ("releases",),
    "clients": ("releases",),
    "run": ("delivery",),
    "report": ("delivery",),
    "log": ("delivery",),
    "suppressions": ("suppressions",),
    "bounces": ("bounces",),
    "replies": ("replies",),
    "web": ("web",),
    "users": ("users",),
    "doctor": ("doctor",),
    "audit": ("audit",),
    "webhooks": ("webhooks",),
    "purge": ("maintenance",),
}

#: Root options that take a value (the word after them is not a command).
_VALUED = ("--config", "-c")


def _version(value: bool) -> None:
    if value:
        out.print(f"mailer {__version__}")
        raise typer.Exit()


def main_options(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (default: $MAILER_CONFIG or ./mailer.toml)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Settings come from the TOML file, then MAILER_* environment variables."""
    STATE.config = config
    STATE._settings = None


def build(modules: Iterable[str] = COMMAND_MODULES + OPS_COMMAND_MODULES) -> typer.Typer:
    """A root app with the commands of ``modules`` (default: all of them)."""
    root = typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="rich")
    root.callback()(main_options)
    for name in modules:
        importlib.import_module(f"mailer.cli.{name}").register(root)
    return root


@cache
def _whole() -> typer.Typer:
    return build()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return _whole()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_named(argv: Sequence[str]) -> str | None:
    """The top-level command a command line names (``mailer -c x.toml run`` → ``run``),
    or None (no command, ``--help``, an unknown word: those get the whole tree)."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif arg == "--":
            return None
        elif not arg.startswith("-"):
            return arg if arg in HOMES else None
    return None


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and an exit code."""
    named = command_named(sys.argv[1:])
    cli = _whole() if named is None else build(HOMES[named])
    try:
        cli()
    except MailerError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        err.print(f"[red]error:[/] database: {escape(str(orig).strip().splitlines()[0])}", highlight=False)
        sys.exit(6)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
