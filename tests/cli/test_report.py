"""`mailer report` and `mailer log` after a send: the JSON shapes scripts rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mailer.cli import app
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer


def cli(rt: Runtime, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"MAILER_DATABASE__URL": rt.settings.database.url})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_report_and_log_json(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """Three sent, one hard-bounced: report counts by status and segment; log filters by status and pages."""
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, ["a@example.com", "b@example.com", "c@example.org", "gone@example.com"])
    smtp.rcpt_reply["gone@example.com"] = "550 5.1.1 No such user"
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()

    report = cli(ert, "report", str(rid), "--json")
    assert report["release"] == rid and report["status"] == "partial"
    assert report["counts"] == {"sent": 3, "failed": 1}
    assert report["segments"] == {"press-all": {"sent": 3, "failed": 1}}
    assert report["domains"]["example.com"] == {"sent": 2, "failed": 1}

    failed = cli(ert, "log", "--release", str(rid), "--status", "failed", "--json")["rows"]
    assert [(r["email"], r["reason"], r["last_code"]) for r in failed] == [("gone@example.com", "hard_bounce", 550)]
    assert failed[0]["last_reply"].startswith("550 5.1.1")

    first_page = cli(ert, "log", "--release", str(rid), "--limit", "2", "--json")
    first = first_page["rows"]
    assert first_page["next_after"] == first[-1]["id"]  # the cursor of the next page
    rest_page = cli(ert, "log", "--release", str(rid), "--after", str(first_page["next_after"]), "--json")
    rest = rest_page["rows"]
    assert len(first) == 2 and len(rest) == 2 and rest_page["next_after"] is None
    assert {r["email"] for r in first + rest} == {"a@example.com", "b@example.com", "c@example.org", "gone@example.com"}
    assert cli(ert, "log", "--email", "example.org", "--json")["rows"][0]["email"] == "c@example.org"
