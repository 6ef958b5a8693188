"""What every command module shares: consoles, settings state, runtime, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mailer.config import Settings, load_settings
from mailer.domain.errors import NotFoundError
from mailer.domain.states import MAX_ID
from mailer.runtime import Runtime

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def id_check(thing: str, *, lowest: int = 1, see: str = "") -> Callable[[int | None], int | None]:
    """A Typer callback for a database id: a number outside ``lowest``..MAX_ID (the web
    routes' bound) names no ``thing``, so it fails as not found (``see``: where to look)
    before any query; the database would fail with an overflow or a range error instead."""
    hint = f" (see `{see}`)" if see else ""

    def check(value: int | None) -> int | None:
        if value is not None and not lowest <= value <= MAX_ID:
            raise NotFoundError(f"no {thing} {value}{hint}")
        return value

    return check


#: The ID argument of every command about one release.
ReleaseId = Annotated[
    int, typer.Argument(metavar="ID", callback=id_check("release", see="mailer releases list"), show_default=False)
]


@dataclass
class State:
    config: Path | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


STATE = State()


@contextmanager
def runtime(*, check_schema: bool = True) -> Iterator[Runtime]:
    """The process's runtime built from the loaded settings; closed on exit."""
    rt = Runtime.open(STATE.settings, check_schema=check_schema)
    try:
        yield rt
    finally:
        rt.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
