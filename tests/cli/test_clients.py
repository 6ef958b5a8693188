"""`mailer clients` and the sending identity: create/update with identity options,
dkim-key (a key in the key folder, its TXT record), dns (records, --check against a stub
resolver: never the network), the alignment override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.runtime import Runtime
from tests.support.cli import run_json, run_proc
from tests.support.dkim import StubResolver

ACME = [
    "clients", "create", "acme", "--name", "Acme Institute", "--from-name", "Acme Press",
    "--from-address", "press@acme.example.com", "--postal-address", "1 Harbour Road",
]  # fmt: skip


def test_create_with_identity_options_and_show(rt: Runtime, env: dict[str, str], dkim_keys: tuple[Path, bytes]) -> None:
    """--dkim-selector, --dkim-key-file and --bounce-domain are stored; show names the identity it sends as."""
    key_file, _ = dkim_keys
    created: Any = run_json(
        *ACME, "--dkim-selector", "acme1", "--dkim-key-file", str(key_file), "--bounce-domain", "rp.acme.example.com"
    )
    assert (created["dkim_selector"], created["dkim_key_file"]) == ("acme1", str(key_file.resolve()))
    assert created["bounce_domain"] == "rp.acme.example.com"
    assert created["identity"] == {
        "from_domain": "acme.example.com",
        "dkim": "client",
        "dkim_domain": "acme.example.com",
        "dkim_selector": "acme1",
        "bounce_domain": "rp.acme.example.com",
        "message_id_domain": "acme.example.com",
        "aligned_by": ["dkim", "spf"],
    }
    text = CliRunner().invoke(app, ["clients", "show", "acme"], env={"COLUMNS": "200"}).stdout
    assert "DKIM client key, d=acme.example.com s=acme1" in text
    assert "bounces+TOKEN@rp.acme.example.com" in text


def test_update_warns_when_alignment_breaks_and_records_the_override(rt: Runtime, env: dict[str, str]) -> None:
    """A return path outside the From domain draws a warning; --alignment-override records who and why."""
    run_json(*ACME)
    result = CliRunner().invoke(app, ["clients", "update", "acme", "--bounce-domain", "bounces.agency.example.net"])
    assert result.exit_code == 0, result.output
    assert "changed bounce_domain" in result.stdout
    assert "warning: client acme: the From domain acme.example.com is aligned with neither" in result.stdout
    updated: Any = run_json("clients", "update", "acme", "--alignment-override", "relay signs", "--as", "lee")
    assert updated["changed"] == ["alignment_override", "alignment_override_at", "alignment_override_by"]
    assert (updated["alignment_override"], updated["alignment_override_by"]) == ("relay signs", "lee")
    back: Any = run_json("clients", "update", "acme", "--bounce-domain", "", "--no-alignment-override")
    assert back["bounce_domain"] is None and back["alignment_override"] is None
    assert back["identity"]["bounce_domain"] == "bounces.acme.example.com"


def test_update_refuses_bad_input_in_one_line(rt: Runtime, env: dict[str, str]) -> None:
    """A bad domain or an unknown selector to retire is one line on stderr and exit code 2."""
    run_json(*ACME)
    result = run_proc(env, "clients", "update", "acme", "--bounce-domain", "no spaces allowed")
    assert result.returncode == 2 and "bounce_domain 'no spaces allowed': not a domain name" in result.stderr
    assert result.stderr.count("\n") == 1
    result = run_proc(env, "clients", "update", "acme", "--retire-selector", "old")
    assert result.returncode == 2 and "has no other key with selector old" in result.stderr


def test_dkim_key_then_dns_check(
    rt: Runtime, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dkim-key writes a key into [dkim] key_dir and prints its TXT; dns --check compares with a stub resolver."""
    monkeypatch.setenv("MAILER_DKIM__KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("MAILER_BOUNCES__MX_HOST", "inbound.example.net")
    monkeypatch.setenv("MAILER_SENDER__SPF", '["ip4:192.0.2.10"]')
    run_json(*ACME)
    key: Any = run_json("clients", "dkim-key", "acme", "--selector", "k1")
    assert key["name"] == "k1._domainkey.acme.example.com" and key["signing"] is True
    assert Path(key["key_file"]) == (tmp_path / "keys" / "acme" / "k1.pem").resolve()
    text = CliRunner().invoke(app, ["clients", "dkim-key", "acme", "--selector", "k2"], env={"COLUMNS": "100"})
    assert text.exit_code == 0
    assert "k2._domainkey.acme.example.com. IN TXT" in text.stdout
    assert "mailer clients update acme --dkim-selector k2" in text.stdout

    records: Any = run_json("clients", "dns", "acme")
    assert [(r["name"], r["type"]) for r in records] == [
        ("k1._domainkey.acme.example.com", "TXT"),
        ("k2._domainkey.acme.example.com", "TXT"),
        ("bounces.acme.example.com", "TXT"),
        ("_dmarc.acme.example.com", "TXT"),
        ("bounces.acme.example.com", "MX"),
    ]
    everything = StubResolver(
        txt={r["name"]: [r["value"]] for r in records if r["type"] == "TXT"},
        mx={"bounces.acme.example.com": ["inbound.example.net"]},
    )
    monkeypatch.setattr("mailer.cli.clients.resolver_factory", lambda: everything)
    checked: Any = run_json("clients", "dns", "acme", "--check")
    assert {r["status"] for r in checked} == {"ok"}
    monkeypatch.setattr("mailer.cli.clients.resolver_factory", lambda: StubResolver())
    result = CliRunner().invoke(app, ["clients", "dns", "acme", "--check"], env={"COLUMNS": "100"})
    assert result.exit_code == 1
    assert "; [missing] DKIM key (signing)" in result.stdout
