"""DKIM signing: a rendered message signs and verifies with dkimpy, covering both List-Unsubscribe headers."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from dkim import dknewkey
from test_render import ANN, DATE, make_spec

from mailer.config import DkimSettings
from mailer.domain.errors import ConfigError
from mailer.message import Renderer
from mailer.message.dkim import DkimSigner

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SELECTOR = "press2026"
DOMAIN = "acme.example.com"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key (dkimpy's own key generator, which runs openssl) and its DNS TXT record."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to generate the DKIM test key")
    folder = tmp_path_factory.mktemp("dkim")
    key_file, dns_file = folder / "private.pem", folder / "dns.txt"
    dknewkey.GenRSAKeys(str(key_file), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(key_file), str(dns_file), verbose=False)
    return key_file, dns_file.read_bytes()


def rendered() -> bytes:
    variant = Renderer(TEMPLATES).compile(make_spec())
    return variant.render(
        ANN,
        to_addr=ANN.email,
        message_id="<d7.42@mail.acme.example.com>",
        unsubscribe_url="https://news.acme.example.com/u/tok123",
        unsubscribe_mailto="mailto:unsubscribe+7-0123456789abcdef@bounces.acme.example.com",
        date=DATE,
    )


def stub_dns(record: bytes) -> Callable[..., bytes | None]:
    """A DNS TXT lookup that knows only our selector's record."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return lookup


def signer_for(key_file: Path) -> DkimSigner:
    signer = DkimSigner.from_settings(DkimSettings(key_file=key_file, selector=SELECTOR, domain=DOMAIN))
    assert signer is not None
    return signer


def test_signature_verifies_and_covers_list_unsubscribe(keys: tuple[Path, bytes]) -> None:
    """A rendered release signed with the configured key verifies, and h= lists both List-Unsubscribe headers."""
    key_file, record = keys
    signed = signer_for(key_file).sign(rendered())
    assert signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(signed, dnsfunc=stub_dns(record))
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header)
    sig = next(line for line in unfolded.split("\r\n") if line.startswith("DKIM-Signature:"))
    h = re.search(r"\bh=([^;]+)", sig)
    assert h is not None
    signed_headers = {name.strip().lower() for name in h.group(1).split(":")}
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
        assert name in signed_headers
    assert "c=relaxed/relaxed" in sig.replace(" ", "")
    assert "a=rsa-sha256" in sig.replace(" ", "")
    assert f"d={DOMAIN}" in sig.replace(" ", "") and f"s={SELECTOR}" in sig.replace(" ", "")


def test_changed_unsubscribe_header_breaks_the_signature(keys: tuple[Path, bytes]) -> None:
    """Someone who rewrites List-Unsubscribe after signing makes the signature fail."""
    key_file, record = keys
    signed = signer_for(key_file).sign(rendered())
    forged = signed.replace(b"https://news.acme.example.com/u/tok123", b"https://evil.example.net/u/tok123")
    assert forged != signed
    assert not dkim.verify(forged, dnsfunc=stub_dns(record))


def test_no_key_file_means_no_signer() -> None:
    """Without dkim.key_file nothing is signed."""
    assert DkimSigner.from_settings(DkimSettings()) is None


@pytest.mark.parametrize("problem", ["missing", "not a key", "no domain"])
def test_bad_configuration_is_a_config_error(tmp_path: Path, problem: str) -> None:
    """A missing or unusable key file, or no domain, stops with a ConfigError naming the key."""
    key_file = tmp_path / "private.pem"
    domain: str | None = DOMAIN
    if problem == "not a key":
        key_file.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    elif problem == "no domain":
        key_file.write_text("irrelevant")
        domain = None
    with pytest.raises(ConfigError) as caught:
        DkimSigner.from_settings(DkimSettings(key_file=key_file, selector=SELECTOR, domain=domain))
    assert caught.value.key == ("dkim.domain" if problem == "no domain" else "dkim.key_file")
    assert str(caught.value).startswith("dkim.")


def test_alignment_with_from_domain(keys: tuple[Path, bytes]) -> None:
    """The From domain aligns when it is the signing domain or below it (relaxed DMARC)."""
    signer = signer_for(keys[0])
    assert signer.aligned_with("press@acme.example.com")
    assert signer.aligned_with("press@news.acme.example.com")
    assert not signer.aligned_with("press@notacme.example.com")
