"""The ``mailer`` command line (Typer + Rich).

:func:`main` answers ``mailer --version`` before importing the command tree: the
commands pull in SQLAlchemy, Pydantic, Jinja and the rest (~90 MB, ~0.7 s), which a
version check (packaging, monitoring, a deploy script) should not pay for. ``app`` (the
Typer application) is imported on first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point (see :func:`mailer.cli.root.main`)."""
    if sys.argv[1:] == ["--version"]:
        from mailer import __version__

        sys.stdout.write(f"mailer {__version__}\n")
        return
    from mailer.cli.root import main as root_main

    root_main()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        from mailer.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
