"""The systemd units in deploy/systemd: sandboxed, and clean under `systemd-analyze verify`
where systemd's tools are installed (skipped elsewhere)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.constants import REPO

UNITS = REPO / "deploy" / "systemd"
NAMES = ("mailer-web.service", "mailer-run@.service", "mailer-inbound.service")
INSTALLED = "/opt/mailer/.venv/bin/mailer"


def _settings(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), value.strip())
    return found


@pytest.mark.parametrize("name", NAMES)
def test_units_are_sandboxed(name: str) -> None:
    """Each unit runs as the mailer user, read-only system, no new privileges, only its state folder writable."""
    unit = _settings(UNITS / name)
    assert unit["User"] == "mailer" and unit["StateDirectory"] == "mailer"
    assert unit["ProtectSystem"] == "strict" and unit["NoNewPrivileges"] == "yes"
    assert unit["ProtectHome"] == "yes" and unit["PrivateTmp"] == "yes" and unit["CapabilityBoundingSet"] == ""
    assert unit["ExecStart"].startswith(INSTALLED + " ")
    assert unit["EnvironmentFile"] == "-/etc/mailer/mailer.env"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say about the units (pointed at this checkout's mailer)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    mailer = Path(sys.executable).with_name("mailer")
    assert mailer.exists(), mailer
    paths = []
    for name in NAMES:
        text = (UNITS / name).read_text("utf-8").replace(INSTALLED, str(mailer))
        # A template is verified as one of its instances.
        target = tmp_path / name.replace("@.", "@1.")
        target.write_text(text, "utf-8")
        paths.append(str(target))
    result = subprocess.run([tool, "verify", *paths], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result
