"""Holes a red team found in the command line: ids past any column, who may approve,
what `run --once` reports, and small wording (help texts, grammar, a directory given as a file)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import typer.main
from typer.testing import CliRunner

from mailer.accounts import users
from mailer.cli import app, main
from mailer.config import Settings, WebSettings
from mailer.domain.states import Role
from mailer.engine.scheduler import run_forever
from mailer.runtime import Runtime
from mailer.store.db import transaction
from tests.support.cli import run_json, run_proc
from tests.support.engine import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    engine_runtime,
    release_status,
    worker_env,
)
from tests.support.faultsmtp import FaultSMTPServer, running_fault_server
from tests.support.releases import RELEASE, seed
from tests.support.web import PASSWORD

HUGE = "99999999999999999999"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with an https unsubscribe base."""
    return settings.model_copy(update={"web": WebSettings(base_url="https://news.example.com")})


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real entry point in-process (errors handled as for a user); exit code, stdout, stderr."""
    argv = sys.argv
    sys.argv = ["mailer", *args]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


# (arguments, what the one line names): every command that takes a database id.
ID_COMMANDS = [
    (("report", HUGE), f"no release {HUGE}"),
    (("releases", "show", HUGE), f"no release {HUGE}"),
    (("releases", "update", HUGE, "release.md"), f"no release {HUGE}"),
    (("releases", "preview", HUGE, "--segment", "press"), f"no release {HUGE}"),
    (("releases", "proof", HUGE, "--to", "me@example.com"), f"no release {HUGE}"),
    (("releases", "submit", HUGE), f"no release {HUGE}"),
    (("releases", "approve", HUGE, "--as", "quinn"), f"no release {HUGE}"),
    (("releases", "schedule", HUGE, "--at", "2026-12-01T09:00:00+00:00"), f"no release {HUGE}"),
    (("releases", "confirm-late", HUGE), f"no release {HUGE}"),
    (("releases", "cancel", HUGE), f"no release {HUGE}"),
    (("releases", "pause", HUGE), f"no release {HUGE}"),
    (("releases", "resume", HUGE), f"no release {HUGE}"),
    (("releases", "retry", HUGE, "--status", "failed"), f"no release {HUGE}"),
    (("log", "--release", HUGE), f"no release {HUGE}"),
    (("log", "--after", HUGE), f"no delivery {HUGE}"),
    (("bounces", "inbox", "--show", HUGE), f"no kept message {HUGE}"),
    (("releases", "show", str(2**31)), f"no release {2**31}"),  # past a 32-bit column
    (("releases", "show", str(2**63)), f"no release {2**63}"),  # past a 64-bit one
    (("releases", "pause", "0"), "no release 0"),
    (("releases", "show", str(2**31 - 1)), f"no release {2**31 - 1}"),  # in range: the database answers
]


@pytest.mark.parametrize(("args", "named"), ID_COMMANDS, ids=[" ".join(a[:3]) for a, _ in ID_COMMANDS])
def test_ids_past_any_row_are_not_found_in_one_line(
    rt: Runtime,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    named: str,
) -> None:
    """An id no column can hold (or 0) is "no release N" with the not-found code, on SQLite and PostgreSQL alike."""
    code, _, stderr = run_main(capsys, *args)
    assert code == 3, stderr
    assert "Traceback" not in stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith(f"error: {named}"), line


# --- who may approve --------------------------------------------------------------------


@pytest.fixture
def submitted(rt: Runtime, env: dict[str, str], tmp_path: Path) -> str:
    """A release written and submitted by pat (before any user account exists); its id."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    rid = str(run_json("releases", "create", str(path), "--as", "pat@example.com")["id"])  # type: ignore[index]
    run_json("releases", "submit", rid, "--as", "pat@example.com")
    return rid


def add_user(rt: Runtime, email: str, role: Role, *, password: str | None = None) -> None:
    with transaction(rt.sessions) as session:
        users.add_user(session, email, role=role, password=password, now=datetime.now(UTC))


def test_approver_must_be_an_enabled_user_who_may_approve(
    rt: Runtime,
    env: dict[str, str],
    submitted: str,
) -> None:
    """With accounts, approve needs the approver's password: none, a wrong one, an unknown name, a viewer,
    a publicist, a disabled approver are refused; an approver with their password approves (issue 21)."""
    for email, role in (
        ("vera@example.com", Role.VIEWER),
        ("paul@example.com", Role.PUBLICIST),
        ("dora@example.com", Role.APPROVER),
        ("quinn@example.com", Role.APPROVER),
    ):
        add_user(rt, email, role, password=PASSWORD)
    with transaction(rt.sessions) as session:
        users.disable_user(session, "dora@example.com", now=datetime.now(UTC))
    wrong = "error: --as {}: wrong password, or no such active user with a password"
    refusals = [
        ("quinn@example.com", None, "error: --as quinn@example.com: user accounts exist, so approving needs"),
        ("quinn@example.com", "not the password", wrong.format("quinn@example.com")),
        ("nobody", PASSWORD, wrong.format("nobody")),
        ("ghost@example.com", PASSWORD, wrong.format("ghost@example.com")),
        ("vera@example.com", PASSWORD, "error: user 'vera@example.com' is a viewer and cannot approve"),
        ("paul@example.com", PASSWORD, "error: user 'paul@example.com' is a publicist and cannot approve"),
        ("dora@example.com", PASSWORD, wrong.format("dora@example.com")),
    ]
    for who, password, line in refusals:
        args = ["releases", "approve", submitted, "--as", who] + (["--password-stdin"] if password else [])
        result = run_proc(env, *args, stdin=f"{password}\n" if password else None)
        assert result.returncode == 4 and result.stderr.strip().startswith(line), result.stderr
    assert run_json("releases", "show", submitted)["status"] == "submitted"  # type: ignore[index]
    done = run_proc(
        env,
        "releases",
        "approve",
        submitted,
        "--as",
        "Quinn@Example.com",
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    approved = json.loads(done.stdout)
    assert approved["status"] == "approved" and approved["approver"] == "quinn@example.com", done.stderr


def test_the_two_person_rule_still_applies_to_a_user_who_may_approve(
    rt: Runtime,
    env: dict[str, str],
    submitted: str,
) -> None:
    """An admin who wrote and submitted the release may approve in general, but not this release."""
    add_user(rt, "pat@example.com", Role.ADMIN, password=PASSWORD)
    result = run_proc(
        env, "releases", "approve", submitted, "--as", "pat@example.com", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert result.returncode == 4
    assert "pat@example.com wrote and submitted release" in result.stderr


def test_submitter_must_be_a_user_who_may_submit(
    rt: Runtime,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """With accounts, submit --as an approver or an unknown name is refused; a publicist submits."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    rid = str(run_json("releases", "create", str(path))["id"])  # type: ignore[index]
    add_user(rt, "quinn@example.com", Role.APPROVER)
    add_user(rt, "paul@example.com", Role.PUBLICIST)
    result = run_proc(env, "releases", "submit", rid, "--as", "quinn@example.com")
    assert (result.returncode, result.stderr.strip()) == (
        4,
        "error: user 'quinn@example.com' is an approver and cannot submit",
    )
    result = run_proc(env, "releases", "submit", rid)  # MAILER_USER=pat: no such account
    assert (result.returncode, result.stderr.strip()) == (3, "error: no user 'pat' (mailer users list)")
    assert run_json("releases", "submit", rid, "--as", "paul@example.com")["status"] == "submitted"  # type: ignore[index]


def test_author_must_be_a_user_who_may_write(
    rt: Runtime,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """With accounts, create/update --as an unknown name or an approver is refused; a publicist writes."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    add_user(rt, "quinn@example.com", Role.APPROVER)
    add_user(rt, "paul@example.com", Role.PUBLICIST)
    result = run_proc(env, "releases", "create", str(path), "--as", "someone-else")
    assert (result.returncode, result.stderr.strip()) == (3, "error: no user 'someone-else' (mailer users list)")
    result = run_proc(env, "releases", "create", str(path), "--as", "quinn@example.com")
    assert (result.returncode, result.stderr.strip()) == (
        4,
        "error: user 'quinn@example.com' is an approver and cannot write",
    )
    created = run_json("releases", "create", str(path), "--as", "Paul@Example.com")
    rid = str(created["id"])  # type: ignore[index]
    result = run_proc(env, "releases", "update", rid, str(path), "--as", "ghost@example.com")
    assert (result.returncode, result.stderr.strip()) == (3, "error: no user 'ghost@example.com' (mailer users list)")
    assert run_json("releases", "show", rid)["author"] == "paul@example.com"  # type: ignore[index]


def test_without_accounts_any_name_approves_and_help_says_so(
    rt: Runtime,
    env: dict[str, str],
    submitted: str,
) -> None:
    """A single-person install (no accounts) keeps taking any --as name; --help tells when that stops."""
    assert run_json("releases", "approve", submitted, "--as", "quinn")["status"] == "approved"  # type: ignore[index]
    shown = CliRunner().invoke(app, ["releases", "approve", "--help"], env={"COLUMNS": "200"}).stdout
    assert "Once user accounts exist" in shown and "any name" in shown


# --- run --once says what happened --------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


def test_run_once_says_a_refused_sender_requeued_and_paused(rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer) -> None:
    """The relay refuses our sender: `run --once` says 0 sent, the tried ones requeued, and the release paused."""
    ert = engine_runtime(rt, smtp.port, Clock(datetime.now(UTC)))
    add_contacts(ert, tmp_path, [f"r{i}@example.com" for i in range(5)])
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    smtp.fail_mail("553 5.1.8 <bounces@example.com>: Sender address rejected: Domain not found", times=None)
    proc = subprocess.run(
        [sys.executable, "-m", "mailer", "run", "--once"],
        env={**worker_env(ert, smtp.port), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert release_status(ert, rid) == "paused"
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(rf"0 sent, \d+ requeued, \d+ not started \(back in the queue\) in release {rid}", lines[0]), (
        lines
    )
    assert lines[1].startswith(f"release {rid} paused: ") and "Sender address rejected" in lines[1], lines


def test_run_once_with_nothing_due_says_so(rt: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    """No approved release: `run --once` says nothing was due instead of "attempted 0 messages"."""
    os.environ["MAILER_DATABASE__URL"] = rt.settings.database.url
    try:
        code, stdout, stderr = run_main(capsys, "run", "--once")
    finally:
        del os.environ["MAILER_DATABASE__URL"]
    assert (code, stdout.strip()) == (0, "nothing was due"), stderr


def test_skipped_scheduler_runs_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A send job still running when its next tick comes is expected: no "maximum number of running instances" noise."""

    class SlowDispatcher:
        rt = SimpleNamespace(engine=SimpleNamespace(dialect=SimpleNamespace(name="sqlite")))

        def replay_journals(self) -> None: ...
        def sweep(self) -> None: ...
        def plan_due(self) -> None: ...
        def finish_releases(self) -> None: ...
        def release_leases(self) -> None: ...

        async def drain(self, *, stop: asyncio.Event) -> int:
            await asyncio.sleep(1.5)
            return 0

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(1.2, os.kill, os.getpid(), signal.SIGTERM)
        await run_forever(cast(Any, SlowDispatcher()), tick_seconds=0.1, send_seconds=0.1)

    with caplog.at_level(logging.DEBUG, logger="apscheduler"):
        asyncio.run(scenario())
    assert any(r.name.startswith("apscheduler") for r in caplog.records)  # the scheduler did log
    assert not [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]


# --- wording ----------------------------------------------------------------------------------


def _help_texts() -> Iterator[tuple[list[str], str]]:
    """(command path, help text) of every command and option, as written in the source."""
    root = typer.main.get_command(app)
    ctx = root.make_context("mailer", ["--help"], resilient_parsing=True)

    def walk(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], str]]:
        for text in [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]:
            yield path, text
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), [*path, name])

    yield from walk(root, [])


def test_square_brackets_in_help_texts_are_shown() -> None:
    """A config section named in a help text ("[smtp]", "[bounces.imap]") is printed, not eaten as Rich markup."""
    checked = 0
    for path, text in _help_texts():
        for written in re.findall(r"\\?\[[a-z_.]+\]", text):
            shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"}).stdout
            assert written.lstrip("\\") in shown, (path, written)
            checked += 1
    assert checked >= 2


def test_workflow_errors_use_the_right_article(
    rt: Runtime,
    env: dict[str, str],
    submitted: str,
) -> None:
    """Submitting an approved release says "an approved release", not "a approved release"."""
    run_json("releases", "approve", submitted, "--as", "quinn")
    result = run_proc(env, "releases", "submit", submitted, "--as", "pat@example.com")
    assert result.returncode == 4
    assert "an approved release cannot become submitted" in result.stderr


def test_contacts_import_of_a_directory_says_so(
    rt: Runtime,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """`contacts import DIR` names the problem: it is a directory, not a missing file."""
    folder = tmp_path / "lists"
    folder.mkdir()
    result = run_proc(env, "contacts", "import", str(folder), "--list", "press")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {folder}: is a directory; give a CSV file"
