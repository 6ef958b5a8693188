"""DKIM: a fresh RSA key per session and a DNS lookup that knows only its record."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from dkim import dknewkey

SELECTOR = "press2026"


DOMAIN = "acme.example.com"


@pytest.fixture(scope="session")
def dkim_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key (dkimpy's own key generator, which runs openssl) and its DNS TXT record."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to generate the DKIM test key")
    folder = tmp_path_factory.mktemp("dkim")
    key_file, dns_file = folder / "private.pem", folder / "dns.txt"
    dknewkey.GenRSAKeys(str(key_file), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(key_file), str(dns_file), verbose=False)
    return key_file, dns_file.read_bytes()


def stub_dns(record: bytes) -> Callable[..., bytes | None]:
    """A DNS TXT lookup that knows only our selector's record."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return lookup


@pytest.fixture(scope="session")
def other_dkim_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A second fresh key and its TXT record (another client's, or a rotation's next key)."""
    folder = tmp_path_factory.mktemp("dkim-other")
    key_file, dns_file = folder / "private.pem", folder / "dns.txt"
    dknewkey.GenRSAKeys(str(key_file), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(key_file), str(dns_file), verbose=False)
    return key_file, dns_file.read_bytes()


def stub_dns_for(records: dict[str, bytes]) -> Callable[..., bytes | None]:
    """A DNS TXT lookup that knows only ``records`` (``selector._domainkey.domain`` -> TXT)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name.decode().rstrip("."))

    return lookup


class StubResolver:
    """A :class:`mailer.releases.dns.Resolver` answering from dicts (no network)."""

    def __init__(self, txt: dict[str, list[str]] | None = None, mx: dict[str, list[str]] | None = None) -> None:
        self.txt_records = txt or {}
        self.mx_records = mx or {}

    def txt(self, name: str) -> list[str]:
        return list(self.txt_records.get(name, []))

    def mx(self, name: str) -> list[str]:
        return list(self.mx_records.get(name, []))
