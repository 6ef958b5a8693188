"""DKIM through the delivery engine: what reaches the relay verifies and signs both
List-Unsubscribe headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from dkim import dknewkey
from enginekit import Clock, Variant, add_contacts, approved_release, engine_runtime
from faultsmtp import FaultSMTPServer, running_fault_server
from test_dkim import stub_dns

from mailer.config import DkimSettings
from mailer.engine.dispatch import Dispatcher
from mailer.message.dkim import DkimSigner
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport

DOMAIN = "acme.example.com"
SELECTOR = "press2026"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh RSA key (dkimpy's generator, which runs openssl) and its DNS TXT record."""
    folder = tmp_path_factory.mktemp("dkim-engine")
    key_file, dns_file = folder / "private.pem", folder / "dns.txt"
    dknewkey.GenRSAKeys(str(key_file), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(key_file), str(dns_file), verbose=False)
    return key_file, dns_file.read_bytes()


@pytest.fixture
def smtp() -> Iterator[FaultSMTPServer]:
    with running_fault_server() as srv:
        yield srv


async def test_engine_signs_every_message(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, keys: tuple[Path, bytes]
) -> None:
    """With a DKIM key configured, every message at the relay carries a signature that
    verifies and whose h= covers From, List-Unsubscribe and List-Unsubscribe-Post."""
    key_file, record = keys
    ert = engine_runtime(rt, smtp.port, Clock())
    add_contacts(ert, tmp_path, [f"d{i}@example.com" for i in range(4)])
    approved_release(ert, [Variant("press-all", "list:press")])
    signer = DkimSigner.from_settings(DkimSettings(key_file=key_file, selector=SELECTOR, domain=DOMAIN))
    assert signer is not None
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool, signer=signer.sign).run_once()
    await pool.close()
    assert len(smtp.raw) == 4
    for raw in smtp.raw:
        assert dkim.verify(raw, dnsfunc=stub_dns(record))
        header = raw.split(b"\r\n\r\n", 1)[0].decode()
        signed = re.search(r"\bh=([^;]+)", header.replace("\r\n", ""))
        assert signed is not None
        names = {h.strip().lower() for h in signed.group(1).split(":")}
        assert {"from", "list-unsubscribe", "list-unsubscribe-post", "message-id"} <= names
