"""CLI helpers: MAILER_* variables pointing the CLI at the test database, and running
``mailer`` in-process (JSON) or as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.runtime import Runtime
from tests.support.constants import REPO
from tests.support.releases import BASE_URL


@pytest.fixture
def env(rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """MAILER_* variables pointing the CLI at the test database; cwd without a mailer.toml."""
    values = {
        "MAILER_DATABASE__URL": rt.settings.database.url,
        "MAILER_PATHS__TEMPLATES_DIR": str(REPO / "templates"),
        "MAILER_WEB__BASE_URL": BASE_URL,
        "MAILER_USER": "pat",
    }
    monkeypatch.delenv("MAILER_CONFIG", raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return values


def run_json(*args: str) -> object:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def run_proc(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mailer`` as a user would (errors go through the real entry point);
    ``stdin`` is what it reads (a password), ``cwd`` where it runs."""
    full_env = {**os.environ, **env, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        input=stdin if stdin is not None else "",
        cwd=cwd,
    )
