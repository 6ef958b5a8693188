"""Every command works from any working directory (issue 21, problem 3): the templates ship
in the package, ``paths.templates_dir`` adds and overrides them relative to the config
file, and so are the config file's other paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailer.config import load_settings
from mailer.message.shipped import shipped_templates_dir, template_sources
from mailer.runtime import Runtime
from tests.support.cli import run_proc
from tests.support.constants import REPO
from tests.support.releases import RELEASE, seed


def test_shipped_templates_are_found_without_configuration() -> None:
    """Without paths.templates_dir the shipped media_advisory and press_release templates are there."""
    folder, sources = template_sources(None)
    assert folder == shipped_templates_dir()
    assert {"base.html", "base.txt", "media_advisory.html", "press_release.txt"} <= set(sources)


def test_config_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """templates_dir, data_dir and a relative SQLite file in the config file resolve against its folder."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "mailer.toml").write_text(
        '[database]\nurl = "sqlite:///state/mailer.db"\n[paths]\ntemplates_dir = "tpl"\ndata_dir = "var"\n'
    )
    settings = load_settings(conf / "mailer.toml")
    assert settings.paths.templates_dir == conf / "tpl"
    assert settings.paths.data_dir == conf / "var"
    assert settings.database.url == f"sqlite:///{conf}/state/mailer.db"


def test_create_from_another_folder_with_shipped_and_own_templates(
    rt: Runtime, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From an unrelated folder: a release on a shipped template, and one on a template beside the config file."""
    seed(rt, tmp_path)
    conf = tmp_path / "conf"
    (conf / "tpl").mkdir(parents=True)
    for suffix in ("html", "txt"):
        shipped = (REPO / "templates" / f"press_release.{suffix}").read_text("utf-8")
        (conf / "tpl" / f"client_note.{suffix}").write_text(shipped.replace("Media contact", "Press desk"), "utf-8")
    (conf / "mailer.toml").write_text('[paths]\ntemplates_dir = "tpl"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    release = tmp_path / "release.md"
    release.write_text(RELEASE, "utf-8")
    monkeypatch.delenv("MAILER_PATHS__TEMPLATES_DIR")
    bare_env = {k: v for k, v in env.items() if k != "MAILER_PATHS__TEMPLATES_DIR"}
    first = run_proc(bare_env, "releases", "create", str(release), "--json", cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    own = tmp_path / "own.md"
    own.write_text(RELEASE.replace('template = "media_advisory"', 'template = "client_note"'), "utf-8")
    second = run_proc(
        bare_env, "--config", str(conf / "mailer.toml"), "releases", "create", str(own), "--json", cwd=elsewhere
    )
    assert second.returncode == 0, second.stderr
    rid = str(json.loads(second.stdout)["id"])
    preview = run_proc(
        bare_env, "--config", str(conf / "mailer.toml"), "releases", "preview", rid,
        "--segment", "foreign-policy-print", "--format", "text", cwd=elsewhere,
    )  # fmt: skip
    assert preview.returncode == 0 and "Press desk: Pat Doe" in preview.stdout, preview.stderr
    missing = run_proc(bare_env, "releases", "create", str(own), cwd=elsewhere)
    assert missing.returncode != 0 and "no template 'client_note'" in missing.stderr
    assert "media_advisory" in missing.stderr
