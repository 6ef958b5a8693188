"""Who runs a command: ``--as``, else ``$MAILER_USER``, else the login name."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from mailer.domain.errors import InputError

__all__ = ["AsOpt", "whoami"]


def whoami(given: str | None) -> str:
    """``--as``, else ``$MAILER_USER``, else the OS login name."""
    if given:
        return given
    if os.environ.get("MAILER_USER"):
        return os.environ["MAILER_USER"]
    try:
        return getpass.getuser()
    except (OSError, KeyError) as exc:
        raise InputError("--as: cannot tell who you are; pass --as USER or set MAILER_USER") from exc


AsOpt = Annotated[str | None, typer.Option("--as", help="Who does this (default: $MAILER_USER or your login).")]
