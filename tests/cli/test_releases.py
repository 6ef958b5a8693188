"""The `mailer clients` and `mailer releases` commands: JSON shapes, files written, errors as one line."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import Settings, WebSettings
from mailer.demo.data import CLIENT_FILE
from mailer.runtime import Runtime
from tests.support.cli import run_json, run_proc
from tests.support.releases import EMBARGO_PREFIX, RELEASE, seed

BASE_URL = "https://news.example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with an https unsubscribe base."""
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


def run(*args: str) -> object:
    """Invoke the CLI in-process; fail the test on a non-zero exit."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_clients_create_show_list_json(rt: Runtime, env: dict[str, str]) -> None:
    """clients create (options and --file), show and list print the client fields as JSON."""
    created = run_json(
        "clients", "create", "acme", "--name", "Acme Institute", "--from-name", "Acme Press",
        "--from-address", "Press@Acme.example.com", "--reply-to", "desk@acme.example.com",
        "--postal-address", "1 Harbour Road\nSpringfield", "--disclosure", "Paid for by Acme.",
    )  # fmt: skip
    assert created == {
        "slug": "acme",
        "name": "Acme Institute",
        "from_name": "Acme Press",
        "from_address": "press@acme.example.com",
        "reply_to": "desk@acme.example.com",
        "postal_address": "1 Harbour Road\nSpringfield",
        "disclosure": "Paid for by Acme.",
        "created_at": created["created_at"],  # type: ignore[index]
        "dkim_domain": None,
        "dkim_selector": None,
        "dkim_key_file": None,
        "dkim_other_keys": {},
        "bounce_domain": None,
        "message_id_domain": None,
        "alignment_override": None,
        "alignment_override_by": None,
        "alignment_override_at": None,
        "identity": {
            "from_domain": "acme.example.com",
            "dkim": "none",
            "dkim_domain": None,
            "dkim_selector": None,
            "bounce_domain": "bounces.acme.example.com",
            "message_id_domain": "acme.example.com",
            "aligned_by": ["spf"],
        },
    }
    from_file = run_json("clients", "create", "--file", str(CLIENT_FILE))
    assert from_file["slug"] == "valdoria-mission"  # type: ignore[index]
    assert run_json("clients", "show", "acme") == created
    assert [c["slug"] for c in run_json("clients", "list")] == ["acme", "valdoria-mission"]  # type: ignore[attr-defined]


def test_release_lifecycle_through_the_cli(rt: Runtime, env: dict[str, str], tmp_path: Path) -> None:
    """create → show → submit → approve (by another) → schedule, with the JSON shapes scripts rely on."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    created = run_json("releases", "create", str(path))
    assert created == {"id": created["id"], "title": "Acme briefing on harbour policy", "status": "draft"}  # type: ignore[index]
    rid = str(created["id"])
    submitted = run_json("releases", "submit", rid)
    assert submitted == {"id": int(rid), "status": "submitted", "warnings": []}
    approved = run_json("releases", "approve", rid, "--as", "quinn")
    assert approved["status"] == "approved" and len(approved["content_hash"]) == 64  # type: ignore[index]
    scheduled = run_json("releases", "schedule", rid, "--at", "2027-12-01T09:45:00-05:00")  # before the embargo
    assert scheduled["send_at"] == "2027-12-01T09:45:00-05:00"  # type: ignore[index]
    shown = run_json("releases", "show", rid)
    assert isinstance(shown, dict)
    assert set(shown) >= {"id", "title", "client", "status", "author", "segments", "variants", "approvals", "history"}
    assert shown["status"] == "approved" and shown["author"] == "pat" and shown["client"] == "acme"
    assert shown["segments"] == ["foreign-policy-print", "broadcast-bookers"]
    assert list(shown["variants"]) == ["broadcast-bookers"]
    assert shown["submitted_hash"] == shown["current_hash"] == approved["content_hash"]  # type: ignore[index]
    assert [a["approver"] for a in shown["approvals"]] == ["quinn"]
    assert [(h["from"], h["to"], h["actor"]) for h in shown["history"]] == [
        (None, "draft", "pat"),
        ("draft", "submitted", "pat"),
        ("submitted", "approved", "quinn"),
        ("approved", "approved", "pat"),
    ]
    listed = run_json("releases", "list", "--status", "approved")
    assert listed == [
        {
            "id": int(rid),
            "title": "Acme briefing on harbour policy",
            "client": "acme",
            "status": "approved",
            "author": "pat",
            "send_at": "2027-12-01T14:45:00+00:00",
        }
    ]
    assert run_json("releases", "list", "--status", "draft") == []
    cancelled = run_json("releases", "cancel", rid, "--as", "sam")
    assert cancelled["status"] == "cancelled"  # type: ignore[index]


def test_preview_writes_eml_html_and_text(rt: Runtime, env: dict[str, str], tmp_path: Path) -> None:
    """preview --format eml writes a message that parses back; html and text print one part each."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    rid = str(run_json("releases", "create", str(path))["id"])  # type: ignore[index]
    out = tmp_path / "preview.eml"
    run("releases", "preview", rid, "--segment", "broadcast-bookers", "--format", "eml", "--output", str(out))
    msg = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == EMBARGO_PREFIX + "Booking: harbour expert for Channel Nine"
    assert msg["To"] == "Bob Ray <bob@tv.example.com>"
    html = run(
        "releases", "preview", rid, "--segment", "foreign-policy-print", "--contact", "bob@tv.example.com",
        "--format", "html",
    )  # fmt: skip
    assert "<h1" in html.stdout and "Dear Bob," in html.stdout  # type: ignore[attr-defined]
    text = run("releases", "preview", rid, "--segment", "foreign-policy-print", "--format", "text")
    assert "MEDIA ADVISORY" in text.stdout and "Dear Ann," in text.stdout  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("releases", "create", "{bad}"), 2, "front matter: the file must start with a '+++' line"),
        (("releases", "create", "missing.md"), 2, "missing.md: file not found"),
        (("releases", "show", "999"), 3, "no release 999"),
        (
            ("releases", "schedule", "{rid}", "--at", "2026-12-02T09:00:00"),
            2,
            "--at: 2026-12-02T09:00:00 has no time zone",
        ),
        (("releases", "approve", "{rid}", "--as", "pat"), 4, "a draft release cannot become approved"),
        (("releases", "list", "--status", "lost"), 2, "--status: 'lost' is not one of"),
        (("releases", "preview", "{rid}", "--segment", "ghosts"), 2, "--segment: release"),
        (
            (
                "clients",
                "create",
                "acme2",
                "--name",
                "A",
                "--from-name",
                "A",
                "--from-address",
                "nope",
                "--postal-address",
                "x",
            ),
            2,
            "from_address: ",
        ),
        (("releases", "proof", "{rid}", "--to", "me@example.com"), 5, "cannot connect to SMTP"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    rt: Runtime, env: dict[str, str], tmp_path: Path, args: tuple[str, ...], code: int, fragment: str
) -> None:
    """Each user mistake exits non-zero with one line on stderr and no traceback."""
    seed(rt, tmp_path)
    good = tmp_path / "release.md"
    good.write_text(RELEASE, "utf-8")
    bad = tmp_path / "bad.md"
    bad.write_text("title = 'no fences'\n", "utf-8")
    rid = str(run_json("releases", "create", str(good))["id"])  # type: ignore[index]
    proc_env = {**env, "MAILER_SMTP__PORT": "9", "MAILER_SMTP__CONNECT_TIMEOUT": "2"}
    result = run_proc(proc_env, *(a.replace("{bad}", str(bad)).replace("{rid}", rid) for a in args))
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


def test_author_cannot_approve_through_the_cli(rt: Runtime, env: dict[str, str], tmp_path: Path) -> None:
    """approve --as the author of a submitted release exits 4 with one line naming the rule."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    rid = str(run_json("releases", "create", str(path))["id"])  # type: ignore[index]
    run_json("releases", "submit", rid)
    result = run_proc(env, "releases", "approve", rid, "--as", "pat")
    assert result.returncode == 4
    assert result.stderr.strip() == (
        f"error: pat wrote and submitted release {rid}: "
        "a second person, who did not write, edit or submit it, must approve it"
    )
