"""`mailer replies` (list, show, undo, research, confirm, dismiss, forward) and the reply
counts of `mailer report`: the JSON shapes scripts rely on, one-line errors."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from mailer.cli import app
from mailer.domain.errors import InputError, NotFoundError, WorkflowError
from mailer.runtime import Runtime
from mailer.store.db import transaction
from mailer.store.tables import Delivery
from tests.support.bounces import send_to
from tests.support.faultsmtp import FaultSMTPServer
from tests.support.replies import DESK, REPLY_DOMAIN, address_of, corpus_reply, holds, inbound, reply_runtime


def _env(rt: Runtime, **more: str) -> dict[str, str]:
    return {
        "MAILER_DATABASE__URL": rt.settings.database.url,
        "MAILER_REPLIES__DOMAIN": REPLY_DOMAIN,
        "MAILER_USER": "staff@example.com",
        **more,
    }


def run(rt: Runtime, *args: str, **env: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=_env(rt, **env))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def lines(rt: Runtime, *args: str, **env: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run(rt, *args, "--json", **env).splitlines() if line.strip()]


def _seed(rt: Runtime) -> tuple[int, int]:
    """A human reply and an out-of-office to two releases; returns their release ids."""
    rrt = reply_runtime(rt)
    releases = []
    for address, name in (("ann.lee@daily.example.com", "human-en-gmail.eml"), ("ben@wire.example.com", "ooo-fr.eml")):
        sent = send_to(rrt, address)
        to = address_of(rrt, sent.delivery_id)
        inbound(rrt).process(corpus_reply(name, to), envelope_recipients=[to])
        with transaction(rt.sessions) as session:
            row = session.get(Delivery, sent.delivery_id)
            assert row is not None
            releases.append(row.release_id)
    return releases[0], releases[1]


def test_replies_list_filters_and_json(rt: Runtime) -> None:
    """`replies list --json` gives every field; --release and --kind filter; a bad kind is one line, exit 2."""
    human_release, away_release = _seed(rt)
    everything = lines(rt, "replies", "list")
    assert [r["kind"] for r in everything] == ["out_of_office", "human"]
    assert everything[0]["return_date"].startswith("2026-12-03") and everything[0]["action"] == "held"
    assert everything[1]["forward_to"] == DESK and everything[1]["forwarded_at"] is None
    assert [r["kind"] for r in lines(rt, "replies", "list", "--release", str(human_release))] == ["human"]
    assert [r["release_id"] for r in lines(rt, "replies", "list", "--kind", "out_of_office")] == [away_release]
    bad = CliRunner().invoke(app, ["replies", "list", "--kind", "nonsense"], env=_env(rt))
    assert isinstance(bad.exception, InputError) and bad.exception.exit_code == 2
    shown = lines(rt, "replies", "show", str(everything[1]["id"]))
    assert "15 minutes" in shown[0]["text"]
    assert "received" in run(rt, "replies", "list")  # the table prints


def test_report_counts_replies(rt: Runtime) -> None:
    """`mailer report --json` carries the release's replies by kind; the text report a line."""
    human_release, _ = _seed(rt)
    assert json.loads(run(rt, "report", str(human_release), "--json"))["replies"] == {"human": 1}
    assert "replies: 1 (human 1)" in run(rt, "report", str(human_release))


def test_undo_and_research_from_the_command_line(rt: Runtime) -> None:
    """`replies undo` lifts a hold (twice: a workflow error, exit 4); a leaver's item is listed and confirmed."""
    _seed(rt)
    away = lines(rt, "replies", "list", "--kind", "out_of_office")[0]
    assert "hold lifted" in run(rt, "replies", "undo", str(away["id"]))
    assert all(h.lifted_at is not None for h in holds(rt))
    again = CliRunner().invoke(app, ["replies", "undo", str(away["id"])], env=_env(rt))
    assert isinstance(again.exception, WorkflowError) and again.exception.exit_code == 4
    rrt = reply_runtime(rt)
    sent = send_to(rrt, "mark.ellis@gazette.example.com")
    to = address_of(rrt, sent.delivery_id)
    inbound(rrt).process(corpus_reply("left-en-newaddress.eml", to), envelope_recipients=[to])
    [item] = lines(rt, "replies", "research")
    assert (item["kind"], item["new_email"]) == ("new_address", "mark.ellis@nordictimes.example.net")
    assert "added as a contact" in run(rt, "replies", "confirm", str(item["id"]))
    assert lines(rt, "replies", "research") == []
    assert lines(rt, "replies", "research", "--status", "confirmed")[0]["resolved_by"] == "staff@example.com"
    missing = CliRunner().invoke(app, ["replies", "dismiss", "999"], env=_env(rt))
    assert isinstance(missing.exception, NotFoundError) and missing.exception.exit_code == 3


def test_forward_once_sends_the_outbox(rt: Runtime, smtp: FaultSMTPServer) -> None:
    """`replies forward --once --json` sends what waits in the outbox through [smtp]."""
    _seed(rt)
    result = lines(rt, "replies", "forward", "--once", MAILER_SMTP__PORT=str(smtp.port))
    assert result == [{"sent": 1, "failed": 0, "waiting": 0}]
    assert smtp.copies_of(DESK) == 1
