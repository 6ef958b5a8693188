"""DKIM signing: a rendered message signs and verifies with dkimpy, covering both List-Unsubscribe headers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mailer.message.dkim
from mailer.config import DkimSettings
from mailer.domain.errors import ConfigError
from mailer.message import Renderer
from mailer.message.dkim import DkimSigner, _OpenSslKey, oversigned
from tests.support.constants import TEMPLATES
from tests.support.dkim import DOMAIN, SELECTOR, stub_dns
from tests.support.render import ANN, DATE, make_spec


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


def signer_for(key_file: Path) -> DkimSigner:
    signer = DkimSigner.from_settings(DkimSettings(key_file=key_file, selector=SELECTOR, domain=DOMAIN))
    assert signer is not None
    return signer


def test_signature_verifies_and_covers_list_unsubscribe(dkim_keys: tuple[Path, bytes]) -> None:
    """A rendered release signed with the configured key verifies, and h= lists both List-Unsubscribe headers."""
    key_file, record = dkim_keys
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


def test_changed_unsubscribe_header_breaks_the_signature(dkim_keys: tuple[Path, bytes]) -> None:
    """Someone who rewrites List-Unsubscribe after signing makes the signature fail."""
    key_file, record = dkim_keys
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


def test_alignment_with_from_domain(dkim_keys: tuple[Path, bytes]) -> None:
    """The From domain aligns when it is the signing domain or below it (relaxed DMARC)."""
    signer = signer_for(dkim_keys[0])
    assert signer.aligned_with("press@acme.example.com")
    assert signer.aligned_with("press@news.acme.example.com")
    assert not signer.aligned_with("press@notacme.example.com")


@pytest.mark.parametrize(
    "added",
    [
        b"Subject: Urgent: wire the fee today\r\n",
        b"List-Unsubscribe: <https://evil.example.net/u/x>\r\n",
        b"From: Someone Else <ceo@evil.example.net>\r\n",
        b"Reply-To: grab@evil.example.net\r\n",
    ],
)
@pytest.mark.parametrize("where", ["prepended", "appended"])
def test_an_added_copy_of_a_signed_header_breaks_the_signature(
    dkim_keys: tuple[Path, bytes], added: bytes, where: str
) -> None:
    """Over-signing: a second Subject, List-Unsubscribe, From or Reply-To added anywhere in the header fails to verify."""
    key_file, record = dkim_keys
    signed = signer_for(key_file).sign(rendered())
    assert dkim.verify(signed, dnsfunc=stub_dns(record))
    head, body = signed.split(b"\r\n\r\n", 1)
    forged = added + signed if where == "prepended" else head + b"\r\n" + added.rstrip(b"\r\n") + b"\r\n\r\n" + body
    assert not dkim.verify(forged, dnsfunc=stub_dns(record))


def test_h_lists_each_present_header_once_more_than_it_occurs(dkim_keys: tuple[Path, bytes]) -> None:
    """h= names Subject twice (one present + one absent) and List-Unsubscribe-Post twice; a missing header once."""
    signed = signer_for(dkim_keys[0]).sign(rendered())
    header = re.sub(r"\r\n[ \t]+", " ", signed.split(b"\r\n\r\n", 1)[0].decode())
    sig = next(line for line in header.split("\r\n") if line.startswith("DKIM-Signature:"))
    h = re.search(r"\bh=([^;]+)", sig)
    assert h is not None
    names = [n.strip().lower() for n in h.group(1).split(":")]
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
        assert names.count(name) == 2, name
    for name in ("reply-to", "mime-version", "content-type", "list-id", "feedback-id"):
        assert names.count(name) == 2, name


def _pure_dkimpy_signature(message: bytes, key_file: Path) -> bytes:
    """The signature dkimpy makes alone (its own pure-Python RSA), for comparison."""
    return bytes(
        dkim.sign(
            message,
            SELECTOR.encode(),
            DOMAIN.encode(),
            key_file.read_bytes(),  # plain bytes: the wrapped functions pass them through
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=b"rsa-sha256",
            include_headers=oversigned(message),
            linesep=b"\r\n",
        )
    )


def test_openssl_signs_the_bytes_dkimpy_would(dkim_keys: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """The same message at the same second: OpenSSL's signature header is byte for byte dkimpy's own (RSASSA-PKCS1-v1_5 is deterministic), and it verifies."""
    key_file, record = dkim_keys
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.0)  # dkimpy's t= tag
    message = rendered()
    signer = signer_for(key_file)
    assert isinstance(signer._key, _OpenSslKey)  # the fast path is the one in use
    signed = signer.sign(message)
    assert signed == _pure_dkimpy_signature(message, key_file) + message
    assert dkim.verify(signed, dnsfunc=stub_dns(record))


def test_the_key_operation_is_openssl_not_python_pow(
    dkim_keys: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing never reaches dkimpy's pure-Python RSA (the ~9 ms a message that capped a DKIM-signing worker near 110 msgs/s)."""
    import dkim.crypto

    def refuse(*args: object) -> bytes:
        raise AssertionError("dkimpy's own RSA was used")

    monkeypatch.setattr(dkim.crypto, "rsa_decrypt", refuse)
    monkeypatch.setattr(mailer.message.dkim, "_pure_sign", refuse)
    key_file, record = dkim_keys
    assert dkim.verify(signer_for(key_file).sign(rendered()), dnsfunc=stub_dns(record))


def test_a_key_openssl_refuses_still_signs_with_dkimpy(
    dkim_keys: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that dkimpy reads but OpenSSL does not load is signed by dkimpy, as before (no key is refused that used to work)."""
    monkeypatch.setattr(mailer.message.dkim, "_openssl_key", lambda pem: None)
    key_file, record = dkim_keys
    signer = signer_for(key_file)
    assert not isinstance(signer._key, _OpenSslKey)
    assert dkim.verify(signer.sign(rendered()), dnsfunc=stub_dns(record))


_WIRE_BITS = st.sampled_from(
    ["\r\n", "\n", "\r", " ", "  ", "\t", " \r\n", "\t\r\n", "\r\n\r\n", "\r\n ", ":", "From ", "A: b", "x", "é"]
)
_WIRE = st.lists(st.one_of(_WIRE_BITS, st.text(max_size=20)), max_size=40).map(lambda p: "".join(p).encode())


@settings(max_examples=500, deadline=None)
@given(_WIRE)
def test_the_shortcuts_give_what_dkimpy_gives(data: bytes) -> None:
    """Any bytes (CR, LF, CRLF, spaces, tabs, blank lines, folded and malformed headers): the message split and both relaxed-canonicalization steps return exactly what dkimpy's own functions return, or raise what they raise."""
    from mailer.message import dkim as ours

    assert ours._compress_whitespace(data) == ours._pure_compress_whitespace(data)
    assert ours._strip_trailing_whitespace(data) == ours._pure_strip_trailing_whitespace(data)
    try:
        expected = ours._pure_rfc822_parse(data)
    except Exception as exc:  # dkimpy's own: MessageFormatError, or IndexError for a leading fold
        with pytest.raises(type(exc)) as caught:
            ours._rfc822_parse(data)
        assert str(caught.value) == str(exc)
    else:
        assert ours._rfc822_parse(data) == expected


def test_the_shortcuts_are_the_ones_dkimpy_calls() -> None:
    """dkimpy's signing looks the wrapped functions up where they were installed (a dkimpy that moved them would silently lose the shortcuts)."""
    from dkim import canonicalization

    from mailer.message import dkim as ours

    assert dkim.rfc822_parse is ours._rfc822_parse
    assert dkim.RSASSA_PKCS1_v1_5_sign is ours._rsassa_pkcs1_v1_5_sign
    assert canonicalization.compress_whitespace is ours._compress_whitespace
    assert canonicalization.strip_trailing_whitespace is ours._strip_trailing_whitespace
