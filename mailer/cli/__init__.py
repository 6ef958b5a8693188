"""The ``mailer`` command line (Typer + Rich)."""

from mailer.cli.root import app, main

__all__ = ["app", "main"]
