"""What every command module shares: consoles, settings state, runtime, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mailer.config import Settings, load_settings
from mailer.runtime import Runtime

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


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
