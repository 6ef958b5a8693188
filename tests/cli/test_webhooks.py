"""`mailer webhooks`: add (secret printed once), list, log, disable, retry."""

from __future__ import annotations

from typer.testing import CliRunner

from mailer.cli import app
from mailer.domain.errors import InputError, NotFoundError
from mailer.runtime import Runtime
from mailer.store import webhooks as webhook_store
from mailer.store.db import transaction
from tests.support.cli import run_json
from tests.support.constants import FIXED_NOW


def test_add_list_log_disable(env: dict[str, str], rt: Runtime) -> None:
    """An endpoint added from the command line gets events, shows in the list and the log, and can be disabled."""
    made = run_json(
        "webhooks", "add", "https://hooks.example.com/x", "--event", "delivery.sent", "--event", "release.*"
    )
    assert isinstance(made, dict) and made["secret"].startswith("whsec_")
    bad = CliRunner().invoke(app, ["webhooks", "add", "https://hooks.example.com/x", "--event", "nope"])
    assert isinstance(bad.exception, InputError) and "nope" in str(bad.exception)
    with transaction(rt.sessions) as session:
        webhook_store.emit(session, "delivery.sent", {"delivery_id": 1}, now=FIXED_NOW)
    listed = run_json("webhooks", "list")
    assert listed == [
        {
            "id": made["id"],
            "url": "https://hooks.example.com/x",
            "events": ["delivery.sent", "release.*"],
            "active": True,
            "pending": 1,
            "failed": 0,
            "created_by": "pat",
        }
    ]
    log = run_json("webhooks", "log")
    assert isinstance(log, list) and [(r["event"], r["status"]) for r in log] == [("delivery.sent", "pending")]
    assert CliRunner().invoke(app, ["webhooks", "disable", str(made["id"])]).exit_code == 0
    assert isinstance(CliRunner().invoke(app, ["webhooks", "disable", "999"]).exception, NotFoundError)
