"""A command line that names its command builds only that command's modules (mailer.cli.root.HOMES)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import typer
import typer.core

from mailer.cli import root
from tests.support.constants import REPO


def _tree(command: Any) -> dict[str, Any]:
    """A command's options and arguments, and its subcommands' trees, by name."""
    shape: dict[str, Any] = {"params": sorted(p.name or "" for p in command.params), "help": command.help}
    if isinstance(command, typer.core.TyperGroup):
        shape["commands"] = {name: _tree(sub) for name, sub in sorted(command.commands.items())}
    return shape


def _commands(app: typer.Typer) -> dict[str, Any]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return _tree(group)["commands"]  # type: ignore[no-any-return]


def test_every_command_has_a_home() -> None:
    """Each top-level command of the whole tree is listed in HOMES, and HOMES names no other."""
    assert set(_commands(root.app)) == set(root.HOMES)


ALONE = """
import json, sys
from mailer.cli import root
from tests.cli.test_lazy_tree import _commands
names = sys.argv[1:]
print(json.dumps({n: _commands(root.build(root.HOMES[n]))[n] for n in names}))
"""


@pytest.mark.parametrize("modules", sorted(set(root.HOMES.values())), ids="+".join)
def test_a_command_built_alone_is_the_same_command(modules: tuple[str, ...]) -> None:
    """Built in a fresh process from its HOMES modules only, each command has the same subcommands, options and help as in the whole tree."""
    names = [n for n, home in root.HOMES.items() if home == modules]
    proc = subprocess.run(
        [sys.executable, "-c", ALONE, *names], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    whole = _commands(root.app)
    assert json.loads(proc.stdout) == {n: json.loads(json.dumps(whole[n])) for n in names}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "--once"], "run"),
        (["-c", "x.toml", "contacts", "import", "f.csv"], "contacts"),
        (["--config", "run", "report"], "report"),
        (["--config=x.toml", "db", "upgrade"], "db"),
        (["--help"], None),
        ([], None),
        (["nonesuch"], None),
        (["--", "run"], None),
    ],
)
def test_the_command_a_line_names(argv: list[str], named: str | None) -> None:
    """command_named skips root options (and the value of --config/-c) and knows only real commands."""
    assert root.command_named(argv) == named


def test_mailer_run_does_not_load_the_web_ui() -> None:
    """`mailer run --help` loads neither the web UI nor the bounce parsers; `mailer --help` still lists every command."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert "--once" in proc.stdout
    loaded = set(proc.stderr.split("MODULES:")[1].split())
    assert "mailer.cli.delivery" in loaded
    assert not {"mailer.cli.releases", "mailer.cli.bounces", "mailer.web", "fastapi"} & loaded
    whole = subprocess.run(
        [sys.executable, "-m", "mailer", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    for name in ("run", "contacts", "releases", "bounces", "purge", "webhooks"):
        assert name in whole.stdout


PROBE = """
import atexit, runpy, sys
atexit.register(lambda: sys.stderr.write("MODULES: " + " ".join(sorted(sys.modules))))
sys.argv[0] = "mailer"
runpy.run_module("mailer", run_name="__main__", alter_sys=True)
"""
