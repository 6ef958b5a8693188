"""The audit log from the command line: the CLI's actor is the named user; list and export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from typer.testing import CliRunner

from mailer.audience import suppressions
from mailer.cli import app
from mailer.domain.states import SuppressionReason
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.cli import run_json
from tests.support.constants import FIXED_NOW


def test_user_changes_exports_and_suppression_removals_name_the_cli_actor(env: dict[str, str], rt: Runtime) -> None:
    """users add/disable --as, an export and a lifted suppression are listed with their actor and no IP."""
    runner = CliRunner()
    added = runner.invoke(
        app, ["users", "add", "new@staff.example.com", "--role", "viewer", "--as", "boss@example.com"]
    )
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["users", "disable", "new@staff.example.com", "--as", "boss@example.com"]).exit_code == 0
    assert runner.invoke(app, ["contacts", "export"]).exit_code == 0
    with transaction(rt.sessions) as session:
        suppressions.suppress(
            session, "gone@example.org", reason=SuppressionReason.MANUAL, source="test", now=FIXED_NOW
        )
    with transaction(rt.sessions) as session:
        suppressions.lift(
            session, "gone@example.org", scope="*", reason="asked us", actor="pat", now=FIXED_NOW + timedelta(1)
        )
    listed = run_json("audit", "list")
    assert isinstance(listed, list)
    got = [(e["actor"], e["action"], e["target"], e["ip"]) for e in reversed(listed)]
    assert got == [
        ("boss@example.com", "user.add", "new@staff.example.com", None),
        ("boss@example.com", "user.disable", "new@staff.example.com", None),
        ("pat", "export", "contacts", None),
        ("pat", "suppression.remove", "gone@example.org", None),
    ]
    only_users = run_json("audit", "list", "--action", "user.")
    assert isinstance(only_users, list) and [e["action"] for e in only_users] == ["user.disable", "user.add"]
    exported = runner.invoke(app, ["audit", "export", "--actor", "BOSS@example.com"])
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["action"] for r in rows] == ["user.disable", "user.add"]
