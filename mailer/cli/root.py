"""The ``mailer`` command. Thin: parse, call one function, present (Rich or ``--json``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from mailer import __version__
from mailer.cli.common import STATE, err, out
from mailer.domain.errors import MailerError

app = typer.Typer(
    help="mailer: press releases to journalists, approved, personalized, delivered exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

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
for _name in COMMAND_MODULES + OPS_COMMAND_MODULES:
    if importlib.util.find_spec(f"mailer.cli.{_name}") is not None:
        importlib.import_module(f"mailer.cli.{_name}").register(app)


def _version(value: bool) -> None:
    if value:
        out.print(f"mailer {__version__}")
        raise typer.Exit()


@app.callback()
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


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and an exit code."""
    try:
        app()
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
