"""Two-person approval: the approver is not the author, not anyone who edited the content,
not the submitter — through the CLI (the staff pages: tests/web/test_approval.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from mailer.config import DatabaseSettings, Settings, WebSettings
from mailer.runtime import Runtime
from mailer.store import db
from tests.support.cli import run_json, run_proc
from tests.support.releases import BASE_URL, RELEASE, seed

REFUSAL = "a second person, who did not write, edit or submit it, must approve it"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with an https unsubscribe base."""
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


def test_editor_submitter_and_author_cannot_approve_through_the_cli(
    rt: Runtime,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """pat writes, erin edits, sam submits: each of them is refused in one line; quinn approves."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    rid = str(run_json("releases", "create", str(path), "--as", "pat")["id"])  # type: ignore[index]
    path.write_text(RELEASE.replace("Hello {{", "Good day {{"), "utf-8")
    run_json("releases", "update", rid, str(path), "--as", "erin")
    run_json("releases", "submit", rid, "--as", "sam")
    for who, did in (("ERIN", "edited"), ("sam", "submitted"), ("pat", "wrote")):
        result = run_proc(env, "releases", "approve", rid, "--as", who)
        assert result.returncode == 4, result.stderr
        assert result.stderr.strip() == f"error: {who} {did} release {rid}: {REFUSAL}"
    shown = run_json("releases", "show", rid)
    assert shown["status"] == "submitted" and shown["approvals"] == []  # type: ignore[index]
    assert shown["editors"] == ["pat", "erin"]  # type: ignore[index]
    approved = run_json("releases", "approve", rid, "--as", "quinn")
    assert approved["status"] == "approved"  # type: ignore[index]


def test_an_edit_before_an_earlier_submission_still_counts(
    rt: Runtime,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """An editor stays an editor after the release is submitted, sent back and submitted again by someone else."""
    seed(rt, tmp_path)
    path = tmp_path / "release.md"
    path.write_text(RELEASE, "utf-8")
    rid = str(run_json("releases", "create", str(path), "--as", "pat")["id"])  # type: ignore[index]
    run_json("releases", "submit", rid, "--as", "pat")
    path.write_text(RELEASE.replace("Hello {{", "Hi {{"), "utf-8")
    run_json("releases", "update", rid, str(path), "--as", "erin")  # back to draft
    run_json("releases", "submit", rid, "--as", "pat")
    result = run_proc(env, "releases", "approve", rid, "--as", "erin")
    assert result.returncode == 4 and "erin edited release" in result.stderr


def test_migration_records_the_editors_of_existing_releases(tmp_path: Path) -> None:
    """Upgrading a 0002 database records each release's author and the actors of its "edited" events as editors."""
    engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'old.db'}"))
    db.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO clients (id, slug, name, from_name, from_address, postal_address, created_at) "
                "VALUES (1, 'acme', 'Acme', 'Acme', 'press@acme.example.com', '1 Road', '2026-11-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO releases (id, client_id, title, subject, template, body, extra, status, author, "
                "created_at, updated_at) VALUES (1, 1, 't', 's', 'press_release', 'b', '{}', 'submitted', 'Pat', "
                "'2026-11-01 00:00:00', '2026-11-01 00:00:00')"
            )
        )
        for actor, note in (
            ("pat", "created"),
            ("Erin", "edited"),
            ("erin", "edited while submitted: back to draft"),
            ("sam", "checks passed"),
        ):
            conn.execute(
                text(
                    "INSERT INTO release_events (release_id, from_status, to_status, actor, note, at) "
                    "VALUES (1, 'draft', 'draft', :actor, :note, '2026-11-02 00:00:00')"
                ),
                {"actor": actor, "note": note},
            )
    db.upgrade(engine)
    with engine.begin() as conn:
        result = conn.execute(text("SELECT actor_key FROM release_editors ORDER BY actor_key"))
        rows = [str(row[0]) for row in result]
    engine.dispose()
    assert rows == ["erin", "pat"]
