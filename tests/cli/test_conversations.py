"""`mailer releases correct|withdraw` as spelled in issue 18: --json prints the new release's
id; the correction reaches exactly the original's sent + unknown rows (both databases)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mailer.cli import app
from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from tests.support.cli import run_json, run_proc
from tests.support.conversations import CORRECTION, GOT, MAYBE, approve, messages_to, sent_original
from tests.support.engine import Clock, deliveries, engine_runtime
from tests.support.fake_transport import FakeTransport


async def test_correct_and_withdraw_print_the_new_release_id(rt: Runtime, tmp_path: Path, env: dict[str, str]) -> None:
    """`releases correct ID FILE.md --json` and `releases withdraw ID --note T --json` print the
    new draft's id; the correction, approved, reaches exactly sent + unknown, threaded."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    fake = FakeTransport()
    original = await sent_original(ert, tmp_path, fake)
    path = tmp_path / "correction.md"
    path.write_text(CORRECTION, "utf-8")
    made = run_json("releases", "correct", str(original), str(path))
    assert isinstance(made, dict)
    assert (made["status"], made["kind"], made["parent"]) == ("draft", "correction", original)
    assert made["subject"].startswith("CORRECTION: ")
    shown = run_json("releases", "show", str(original))
    assert isinstance(shown, dict) and shown["linked"] == [{"id": made["id"], "kind": "correction", "status": "draft"}]
    approve(ert, made["id"])
    before = len(fake.sent)
    await Dispatcher(ert, fake).run_once()
    got = messages_to(fake, before)
    assert sorted(got) == sorted([GOT, MAYBE])
    originals = deliveries(ert, original)
    assert all(m["In-Reply-To"] == originals[a].message_id for a, m in got.items())
    withdrawn = run_json("releases", "withdraw", str(original), "--note", "Please disregard the report.")
    assert isinstance(withdrawn, dict) and withdrawn["kind"] == "withdrawal"
    assert withdrawn["id"] == made["id"] + 1


def test_correcting_a_draft_is_one_line_and_exit_4(rt: Runtime, tmp_path: Path, env: dict[str, str]) -> None:
    """A release that never went out cannot be corrected: one line on stderr, exit code 4, no traceback."""
    from tests.support.engine import Variant, add_contacts, approved_release

    add_contacts(rt, tmp_path, [GOT])
    rid = approved_release(rt, [Variant("press-all", "list:press")])
    path = tmp_path / "c.md"
    path.write_text(CORRECTION, "utf-8")
    proc = run_proc(env, "releases", "correct", str(rid), str(path))
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().startswith("error:") and "started sending" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = CliRunner().invoke(app, ["releases", "withdraw", str(rid)])
    assert missing.exit_code == 2  # --note is required


async def test_cap_is_reported_and_lifted_through_the_cli(rt: Runtime, tmp_path: Path, env: dict[str, str]) -> None:
    """With [cadence] max_per_contact = 1 the second release's rows are `capped` in `mailer report
    --json` and `mailer log`; `releases lift-cap ID --as APPROVER --json` queues them again."""
    from tests.support.engine import Variant, add_contacts, approved_release

    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1, cadence__max_per_contact=1)
    fake = FakeTransport()
    add_contacts(ert, tmp_path, [GOT, MAYBE])
    approved_release(ert, [Variant("press-all", "list:press")])
    await Dispatcher(ert, fake).run_once()
    second = approved_release(ert, [Variant("press-all", "list:press")])
    await Dispatcher(ert, fake).run_once()
    report = run_json("report", str(second))
    assert isinstance(report, dict) and report["counts"] == {"capped": 2}
    log = run_json("log", "--release", str(second))
    assert isinstance(log, dict) and {r["reason"] for r in log["rows"]} == {"cadence cap: 1 per 24h"}
    lifted = run_json("releases", "lift-cap", str(second), "--as", "approver2", "--note", "embargo lifted early")
    assert lifted == {"id": second, "cap_lifted_by": "approver2", "requeued": 2}
    shown = run_json("releases", "show", str(second))
    assert isinstance(shown, dict) and shown["status"] == "sending"
    assert shown["history"][-1]["note"].startswith("cadence cap lifted by approver2: embargo lifted early")


async def test_report_shows_the_waves(rt: Runtime, tmp_path: Path, env: dict[str, str]) -> None:
    """`mailer report ID` (text and --json) shows a local-hour release's waves, earliest first."""
    from datetime import UTC, datetime

    from tests.support.conversations import WAVES, local_release
    from tests.support.engine import release_status

    clock = Clock(datetime(2026, 12, 1, 19, 0, tzinfo=UTC))
    ert = engine_runtime(rt, 25, clock, smtp__pool_size=1)
    rid = local_release(ert, tmp_path)
    await Dispatcher(ert, FakeTransport()).run_once()
    assert release_status(ert, rid) == "sending"
    report = run_json("report", str(rid))
    assert isinstance(report, dict)
    assert [(w["at"], sum(w["counts"].values())) for w in report["waves"]] == [
        (str(at), len(who)) for at, who in WAVES.items()
    ]
    text = CliRunner().invoke(app, ["report", str(rid)], env={"COLUMNS": "200"})
    assert text.exit_code == 0 and "wave (UTC)" in text.stdout and "2026-12-02 14:00" in text.stdout


async def test_follow_up_only_no_reply(rt: Runtime, tmp_path: Path, env: dict[str, str]) -> None:
    """`releases follow-up ID FILE.md --only no-reply --json` prints the new draft (kind, filter)."""
    ert = engine_runtime(rt, 25, Clock(), smtp__pool_size=1)
    original = await sent_original(ert, tmp_path, FakeTransport())
    path = tmp_path / "follow-up.md"
    path.write_text('+++\nsubject = "Following up"\n+++\nAny questions?\n', "utf-8")
    made = run_json("releases", "follow-up", str(original), str(path), "--only", "no-reply")
    assert isinstance(made, dict)
    assert (made["kind"], made["parent"], made["only"], made["status"]) == ("follow_up", original, "no-reply", "draft")
    bad = CliRunner().invoke(app, ["releases", "follow-up", str(original), str(path), "--only", "nobody"])
    assert bad.exit_code == 2
