"""Configuration: file, environment overrides, and one clear line for every mistake."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.config import RETIRED_DEFAULT_SECRET, load_settings
from mailer.domain.errors import ConfigError
from tests.support.constants import REPO


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
        ("[smtp]\nclient = 'smtplib'\n", "smtp.client"),
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


def test_retired_aiosmtplib_client_warns_and_uses_pipelined(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """smtp.client = "aiosmtplib" (the removed client) loads as "pipelined" with one warning line."""
    cfg = tmp_path / "old.toml"
    cfg.write_text('[smtp]\nclient = "aiosmtplib"\n')
    with caplog.at_level("WARNING", logger="mailer.config"):
        s = load_settings(cfg)
    assert s.smtp.client == "pipelined"
    [record] = caplog.records
    assert "aiosmtplib" in record.getMessage() and "deprecated" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_cli_warns_once_for_the_retired_client(tmp_path: Path) -> None:
    """The CLI with smtp.client = "aiosmtplib" runs the command and prints one warning line, no traceback."""
    cfg = tmp_path / "old.toml"
    cfg.write_text('[smtp]\nclient = "aiosmtplib"\n')
    proc = _cli(tmp_path, "--config", str(cfg), "db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    assert "at revision" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        'smtp.client = "aiosmtplib" is deprecated and ignored: using the pipelined client'
    ]


# --- the signing key and other one-line errors (issue 12, items 3 and 14) ---------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m mailer ARGS`` in ``cwd`` with no MAILER_* variables but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), "COLUMNS": "200", **env},
        timeout=120,
    )


def test_example_config_ships_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """config.example.toml sets no secret_key: nothing usable is shipped, and there is no built-in one."""
    monkeypatch.delenv("MAILER_SECRET_KEY", raising=False)
    s = load_settings(REPO / "config.example.toml")
    assert s.secret_key is None and s.old_secret_keys == []
    assert s.paths.data_dir == REPO / "var"  # relative to the file (issue 21)
    assert not re.search(r"^\s*secret_key\s*=", (REPO / "config.example.toml").read_text(), re.MULTILINE)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"MAILER_SECRET_KEY": "too-short-a-key"}, "secret_key"),
        ({"MAILER_SECRET_KEY": RETIRED_DEFAULT_SECRET}, "secret_key"),
        ({"MAILER_OLD_SECRET_KEYS": '["also-too-short"]'}, "old_secret_keys"),
    ],
)
def test_weak_keys_are_refused_without_echoing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], key: str
) -> None:
    """A key under 32 bytes (or the retired built-in one) is one ConfigError naming the setting, never the key."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILER_SECRET_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert key in message and "\n" not in message
    for value in env.values():
        assert value.strip('[]"') not in message


def test_secret_key_of_32_bytes_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Exactly 32 bytes is enough; old_secret_keys may hold several keys as a JSON list."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAILER_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("MAILER_OLD_SECRET_KEYS", json.dumps(["o" * 40, "p" * 33]))
    s = load_settings()
    assert s.secret_key is not None and s.secret_key.get_secret_value() == "x" * 32
    assert [k.get_secret_value() for k in s.old_secret_keys] == ["o" * 40, "p" * 33]


def test_old_secret_keys_not_json_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAILER_OLD_SECRET_KEYS=notjson is a ConfigError naming the variable, in the CLI one line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAILER_OLD_SECRET_KEYS", "notjson")
    with pytest.raises(ConfigError, match="MAILER_OLD_SECRET_KEYS: not valid JSON"):
        load_settings()
    proc = _cli(tmp_path, "lists", MAILER_OLD_SECRET_KEYS="notjson")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "MAILER_OLD_SECRET_KEYS" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_config_file_not_utf8_is_one_line(tmp_path: Path) -> None:
    """A config file in Latin-1 gives one line naming the file (no UnicodeDecodeError traceback)."""
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes('[sender]\nbounce_domain = "café.example.com"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_settings(cfg)
    assert str(cfg) in str(info.value)
    proc = _cli(tmp_path, "--config", str(cfg), "lists")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(cfg) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_demo_runs_without_a_configured_key(tmp_path: Path) -> None:
    """`mailer --config config.example.toml demo` works with no secret: the key is generated in var/ and announced once."""
    for name in ("lists", "templates"):
        (tmp_path / name).symlink_to(REPO / name)
    shutil.copy(REPO / "config.example.toml", tmp_path / "config.example.toml")
    proc = _cli(tmp_path, "--config", "config.example.toml", "demo", MAILER_SMTP__PORT=str(_free_port()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    key_file = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert proc.stderr.count("generated a random one") == 1, proc.stderr
    again = _cli(tmp_path, "--config", "config.example.toml", "demo", MAILER_SMTP__PORT=str(_free_port()))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "generated" not in again.stderr
