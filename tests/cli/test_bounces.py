"""The `mailer bounces` commands: parse, ingest and serve."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.bounces.parse import parse_message
from mailer.bounces.report import report_to_json
from mailer.cli.root import app as cli_app
from mailer.runtime import Runtime
from tests.support.bounces import CORPUS, delivery, dsn, send_to, verp
from tests.support.constants import REPO

REAL = sorted((CORPUS / "real").glob("*.eml"))


def test_parse_json_on_the_real_corpus_needs_no_database_or_config(tmp_path: Path) -> None:
    """`bounces parse --json` prints one object per file, even with an unusable config and no database."""
    env = {"MAILER_CONFIG": str(tmp_path / "missing.toml"), "MAILER_DATABASE__URL": "postgresql://nowhere.invalid/x"}
    result = CliRunner().invoke(cli_app, ["bounces", "parse", "--json", *map(str, REAL)], env=env)

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(REAL)
    for file, line in zip(REAL, lines, strict=True):
        assert line == report_to_json(parse_message(file.read_bytes()), file=str(file))
    labels = {label["file"]: label for label in json.loads((CORPUS / "real" / "labels.json").read_text())}
    for line in lines:
        label = labels[Path(line["file"]).name]
        if label["expected"] in ("hard", "soft"):
            assert line["kind"] == "bounce"
            assert [r["address"] for r in line["recipients"]] == [label["original_recipient"]]
            assert line["recipients"][0]["class"] == label["expected"], line["file"]


def test_parse_table_and_missing_file(tmp_path: Path) -> None:
    """Without --json a table is printed; a missing file is one error line with exit code 2."""
    ok = CliRunner().invoke(cli_app, ["bounces", "parse", str(CORPUS / "real" / "postfix-unknown-user-failed.eml")])
    assert ok.exit_code == 0 and "5.1.1" in ok.stdout and "hard" in ok.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "mailer", "bounces", "parse", str(tmp_path / "nope.eml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error:") and "Traceback" not in missing.stderr


def test_ingest_json_summary(rt: Runtime, tmp_path: Path) -> None:
    """`bounces ingest DIR --json` prints the counts; running it again counts duplicates."""
    sent = send_to(rt, "gone@example.org")
    (tmp_path / "bounce.eml").write_bytes(dsn(sent.email, to=verp(rt, sent.delivery_id)))
    (tmp_path / "reply.eml").write_bytes((CORPUS / "written" / "human-reply.eml").read_bytes())
    env = {"MAILER_DATABASE__URL": rt.settings.database.url}

    first = CliRunner().invoke(cli_app, ["bounces", "ingest", str(tmp_path), "--json"], env=env)
    second = CliRunner().invoke(cli_app, ["bounces", "ingest", str(tmp_path), "--json"], env=env)

    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {
        "processed": 2,
        "bounced": 1,
        "delayed": 0,
        "complaints": 0,
        "feedback": 0,
        "sender_refused": 0,
        "review": 0,
        "kept": 0,
        "unsubscribed": 0,
        "ignored": 1,
        "unmatched": 0,
        "duplicates": 0,
        "replies": 0,
    }
    assert json.loads(second.stdout)["duplicates"] == 1
    assert delivery(rt, sent.delivery_id).status == "bounced"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_receives_over_lmtp_and_stops_on_sigterm(rt: Runtime, tmp_path: Path) -> None:
    """`bounces serve` accepts a genuine bounce over LMTP, records it, and exits cleanly on SIGTERM."""
    sent = send_to(rt, "gone@example.org")
    to = verp(rt, sent.delivery_id)
    port = _free_port()
    env = {**os.environ, "MAILER_DATABASE__URL": rt.settings.database.url, "PYTHONPATH": str(REPO)}
    env.pop("MAILER_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "bounces", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert f"receiving bounces over LMTP on 127.0.0.1:{port}" in banner, banner + proc.stderr.read()
        with smtplib.LMTP("127.0.0.1", port) as client:
            assert client.sendmail("", [to], dsn(sent.email, to=to)) == {}
        assert delivery(rt, sent.delivery_id).status == "bounced"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    assert proc.returncode == 0, rest
    assert "stopped" in rest


def test_inbox_lists_review_and_staff_mail(rt: Runtime, tmp_path: Path) -> None:
    """`bounces inbox --json` lists notices kept for review; --category filters; --show prints the raw text."""
    sent = send_to(rt, "gone@example.org")
    (tmp_path / "notoken.eml").write_bytes(
        dsn(sent.email, to="press@harbor.example.org", original_message_id=sent.message_id)
    )
    env = {"MAILER_DATABASE__URL": rt.settings.database.url}
    assert CliRunner().invoke(cli_app, ["bounces", "ingest", str(tmp_path)], env=env).exit_code == 0

    listed = CliRunner().invoke(cli_app, ["bounces", "inbox", "--json"], env=env)
    staff_only = CliRunner().invoke(cli_app, ["bounces", "inbox", "--category", "staff", "--json"], env=env)

    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["category"], row["delivery_id"]) == ("review", sent.delivery_id)
    assert "user_unknown" in row["summary"]
    assert staff_only.stdout == ""
    shown = CliRunner().invoke(cli_app, ["bounces", "inbox", "--show", str(row["id"])], env=env)
    assert "Undelivered Mail Returned to Sender" in shown.stdout
    bad = CliRunner().invoke(cli_app, ["bounces", "inbox", "--category", "nope"], env=env)
    assert bad.exit_code != 0 and "use staff or review" in str(bad.exception)
