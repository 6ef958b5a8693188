"""`mailer doctor` against real aiosmtpd relays (with and without PIPELINING and
STARTTLS, with AUTH), a fake DNS resolver, and the command line's exit codes."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from typer.testing import CliRunner

from mailer.cli import app
from mailer.config import Settings
from mailer.ops.checks import CheckResult, State
from mailer.ops.dns import DnsUnavailable, check_dns
from mailer.ops.doctor import check_base_url, check_dkim, check_templates, failed, run_doctor
from mailer.ops.relay import check_relay
from mailer.runtime import Runtime
from mailer.smtp.server import BoundController, bind_listener
from tests.support.constants import TEMPLATES


class Handler:
    """Accepts everything; advertises PIPELINING when asked to."""

    def __init__(self, *, pipelining: bool) -> None:
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def check_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for 127.0.0.1 (openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    made = Cert(folder / "cert.pem", folder / "key.pem")
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1"
    subprocess.run(
        [*command.split(), "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(made.key), "-out", str(made.cert)],
        check=True,
        capture_output=True,
    )
    return made


@asynccontextmanager
async def relay(*, pipelining: bool, **smtp_kwargs: Any) -> AsyncIterator[int]:
    sock = bind_listener("127.0.0.1", 0)
    port: int = sock.getsockname()[1]
    controller = BoundController(Handler(pipelining=pipelining), sock, **smtp_kwargs)
    await asyncio.to_thread(controller.start)
    try:
        yield port
    finally:
        await asyncio.to_thread(controller.stop)


def smtp_settings(port: int, **smtp: Any) -> Settings:
    return Settings.model_validate({"smtp": {"host": "127.0.0.1", "port": port, "connect_timeout": 5} | smtp})


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


async def test_relay_with_pipelining_and_starttls_offered() -> None:
    """A relay offering PIPELINING, STARTTLS and SIZE passes; the offers are named."""
    async with relay(pipelining=True, tls_context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)) as port:
        results = by_name(await check_relay(smtp_settings(port).smtp))
    assert results["smtp.connect"].state is State.OK
    offers = results["smtp.offers"]
    assert offers.state is State.OK, offers
    assert "PIPELINING yes" in offers.detail and "STARTTLS yes" in offers.detail and "SIZE" in offers.detail
    assert "AUTH no" in offers.detail


async def test_relay_without_pipelining_is_a_warning() -> None:
    """Without PIPELINING the relay still works: a warning, not a failure."""
    async with relay(pipelining=False) as port:
        results = await check_relay(smtp_settings(port).smtp)
    offers = by_name(results)["smtp.offers"]
    assert offers.state is State.WARN and "PIPELINING no" in offers.detail
    assert not failed(results)


async def test_starttls_configured_but_not_offered_fails() -> None:
    """smtp.tls = starttls against a relay without STARTTLS fails the offers check."""
    async with relay(pipelining=True) as port:
        results = await check_relay(smtp_settings(port, tls="starttls").smtp)
    offers = by_name(results)["smtp.offers"]
    assert offers.state is State.FAIL and "STARTTLS no" in offers.detail
    assert failed(results)


async def test_starttls_and_login_are_tried_for_real(cert: Cert) -> None:
    """With STARTTLS and AUTH configured, a real session proves both; a wrong password fails."""
    kwargs: dict[str, Any] = {
        "tls_context": cert.server_context(),
        "require_starttls": True,
        "authenticator": check_login,
        "auth_require_tls": True,
    }
    async with relay(pipelining=True, **kwargs) as port:
        good = smtp_settings(port, tls="starttls", ca_file=str(cert.cert), username="mailer", password="s3cret")
        results = by_name(await check_relay(good.smtp))
        bad = smtp_settings(port, tls="starttls", ca_file=str(cert.cert), username="mailer", password="wrong")
        refused = by_name(await check_relay(bad.smtp))
    assert results["smtp.session"].state is State.OK, results
    assert results["smtp.session"].detail == "STARTTLS and login work"
    assert refused["smtp.session"].state is State.FAIL and "login refused" in refused["smtp.session"].detail


async def test_no_relay_listening_fails() -> None:
    """Nobody listening: the connect check fails with the address."""
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    results = await check_relay(smtp_settings(port).smtp)
    assert [r.state for r in results] == [State.FAIL]
    assert f"127.0.0.1:{port}" in results[0].detail


class FakeResolver:
    def __init__(self, records: dict[tuple[str, str], list[str]], *, down: bool = False) -> None:
        self.records = records
        self.down = down

    def txt(self, name: str) -> list[str]:
        if self.down:
            raise DnsUnavailable("timed out")
        return self.records.get(("TXT", name), [])

    def mx(self, name: str) -> list[str]:
        if self.down:
            raise DnsUnavailable("timed out")
        return self.records.get(("MX", name), [])


def test_dns_records_per_client_domain() -> None:
    """SPF and DMARC per From domain, the bounce domain's MX; missing SPF fails, missing DMARC warns."""
    settings = Settings()
    resolver = FakeResolver(
        {
            ("MX", "bounces.example.com"): ["mx.example.com"],
            ("TXT", "example.org"): ["v=spf1 include:_spf.example.net -all", "google-site-verification=x"],
            ("TXT", "_dmarc.example.org"): ["v=DMARC1; p=reject"],
        }
    )
    results = by_name(check_dns(settings, [("ok-client", "press@example.org"), ("bare", "news@example.net")], resolver))
    assert results["dns.mx bounces.example.com"].state is State.OK
    assert results["dns.spf example.org"].state is State.OK
    assert results["dns.dmarc example.org"].state is State.OK
    assert results["dns.spf example.net"].state is State.FAIL
    assert results["dns.dmarc example.net"].state is State.WARN


def test_dns_unreachable_skips() -> None:
    """No name server answers: one skipped line instead of failures."""
    results = check_dns(Settings(), [("c", "a@example.org")], FakeResolver({}, down=True))
    assert [(r.name, r.state) for r in results] == [("dns", State.SKIP)]


def test_templates_dkim_and_base_url(tmp_path: Path, dkim_keys: tuple[Path, bytes]) -> None:
    """Templates load, a broken one fails; a DKIM key signs; http base URL fails unless local."""
    assert check_templates(Settings(paths={"templates_dir": TEMPLATES})).state is State.OK
    (tmp_path / "broken.html").write_text("{% if %}", "utf-8")
    assert check_templates(Settings(paths={"templates_dir": tmp_path})).state is State.FAIL
    signed = Settings(dkim={"key_file": dkim_keys[0], "domain": "example.com"})
    assert check_dkim(signed).state is State.OK
    assert check_dkim(Settings()).state is State.SKIP
    assert check_base_url(Settings(web={"base_url": "https://news.example.com"})).state is State.OK
    assert check_base_url(Settings(web={"base_url": "http://news.example.com"})).state is State.FAIL
    assert check_base_url(Settings(web={"base_url": "http://127.0.0.1:8000"})).state is State.WARN


async def test_run_doctor_everything_green(rt: Runtime) -> None:
    """A current database, a relay with PIPELINING, https base URL and good DNS: nothing fails."""
    async with relay(pipelining=True) as port:
        settings = rt.settings.model_copy(
            update={
                "smtp": smtp_settings(port).smtp,
                "web": Settings(web={"base_url": "https://news.example.com"}).web,
            }
        )
        resolver = FakeResolver({("MX", "bounces.example.com"): ["mx.example.com"]})
        results = await run_doctor(settings, resolver=resolver)
    assert not failed(results), [r for r in results if r.state is State.FAIL]
    assert by_name(results)["database.migrations"].state is State.OK


def test_cli_doctor_json_and_exit_code(env: dict[str, str]) -> None:
    """`mailer doctor --json` lists every check and exits 1 when the relay is down."""
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    result = CliRunner().invoke(app, ["doctor", "--no-dns", "--json"], env={"MAILER_SMTP__PORT": str(port)})
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is False
    states = {c["check"]: c["state"] for c in body["checks"]}
    assert states["smtp.connect"] == "fail" and states["database.migrations"] == "ok"
    assert "dns" not in states
