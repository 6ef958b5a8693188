"""Configuration: file, environment overrides, and one clear line for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailer.config import load_settings
from mailer.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_example_config_loads_with_safe_defaults() -> None:
    """The shipped config.example.toml is valid and points at SQLite and a local relay."""
    s = load_settings(REPO / "config.example.toml")
    assert s.database.url.startswith("sqlite:///")
    assert s.smtp.host == "127.0.0.1"
    assert s.smtp.data_timeout >= 600  # RFC 5321 4.5.3.2.6


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAILER_SMTP__PORT wins over the file; other keys in the section keep the file's value."""
    cfg = tmp_path / "m.toml"
    cfg.write_text('[smtp]\nhost = "relay.example.com"\nport = 25\n')
    monkeypatch.setenv("MAILER_SMTP__PORT", "587")
    s = load_settings(cfg)
    assert (s.smtp.host, s.smtp.port) == ("relay.example.com", 587)


def test_mailer_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAILER_CONFIG selects the file when --config is not given."""
    cfg = tmp_path / "m.toml"
    cfg.write_text('[web]\nbase_url = "https://news.example.com"\n')
    monkeypatch.setenv("MAILER_CONFIG", str(cfg))
    assert load_settings().web.base_url == "https://news.example.com"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[smtp]\nport = 'abc'\n", "smtp.port"),
        ("[smtp]\nport = 70000\n", "smtp.port"),
        ("[smtpp]\nhost = 'x'\n", "unknown key 'smtpp'"),
        ("[smtp]\nhots = 'x'\n", "unknown key 'smtp.hots'"),
        ("[smtp]\ntls = 'maybe'\n", "smtp.tls"),
        ("[database]\nurl = 'mysql://x'\n", "database.url"),
        ("[smtp\nport=1\n", "not valid TOML"),
    ],
)
def test_bad_key_or_value_names_it(tmp_path: Path, body: str, expected: str) -> None:
    """Each bad key or value gives one ConfigError line naming the file and the key."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert expected in message and str(cfg) in message
    assert "\n" not in message


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    """--config pointing nowhere is reported, not silently replaced by defaults."""
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_cli_reports_config_error_without_traceback(tmp_path: Path) -> None:
    """The CLI turns a bad config into one line on stderr and exit code 2."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[smtp]\nport = 'abc'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mailer", "--config", str(cfg), "lists"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "smtp.port" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
