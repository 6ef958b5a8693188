"""`mailer --version` starts small: no command tree, no database or web libraries, under 100 MB."""

from __future__ import annotations

import subprocess
import sys

from tests.support.constants import REPO

#: Libraries a version check must not load (each costs tens of MB and ~0.1 s).
HEAVY = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "pydantic", "jinja2", "argon2", "playwright", "typer")


def test_version_peak_rss_and_imports() -> None:
    """`python -m mailer --version` prints the version, peaks under 100 MB and imports none of HEAVY."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "mailer", "--version"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors[-2000:]
    assert out.startswith("mailer ")
    imported = {line.split("|")[-1].strip().split(".")[0] for line in errors.splitlines() if line.startswith("import")}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    # Peak RSS: VmHWM read by the process itself as it ends (run as `-m mailer` would be).
    # Not ru_maxrss of the child: it keeps the forked pytest's size from before the exec.
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, "--version"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert probe.stdout.startswith("mailer ")
    peak_kib = int(probe.stderr.split("VmHWM:")[1].split()[0])
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB"


PROBE = """
import atexit, runpy, sys
atexit.register(lambda: sys.stderr.write(open("/proc/self/status").read()))
sys.argv[0] = "mailer"
runpy.run_module("mailer", run_name="__main__", alter_sys=True)
"""
