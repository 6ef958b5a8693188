"""DKIM signing (RFC 6376) of outgoing messages with dkimpy.

The signature covers the headers a receiver needs to trust the message and its
unsubscribe offer: Gmail and Yahoo honour one-click unsubscribe only when
``List-Unsubscribe`` and ``List-Unsubscribe-Post`` are covered by a valid DKIM signature
(RFC 8058 section 4); they and the other headers that matter are over-signed (see
:data:`SIGNED_HEADERS`). Canonicalization is relaxed/relaxed, which survives the header
re-folding and whitespace changes relays make; the algorithm is rsa-sha256.

dkimpy builds the signature (canonicalization, hashes, the header); the RSA operation
itself is OpenSSL's, through ``cryptography`` (issue 20): dkimpy's own RSA is pure Python,
~9 ms a 2048-bit signature, and the sending process signs on its event loop, so a worker
with DKIM configured could not send more than ~110 messages a second. OpenSSL signs in
~0.3 ms. RSASSA-PKCS1-v1_5 is deterministic: the bytes are the ones dkimpy's own RSA gives
(``tests/message/test_dkim.py`` compares them). dkimpy offers no hook for the key
operation, so the two functions it calls (:func:`dkim.parse_pem_private_key`,
:func:`dkim.RSASSA_PKCS1_v1_5_sign`) are wrapped once, at import: a key that is an
:class:`_OpenSslKey` is signed by OpenSSL, any other key exactly as before. Three more of
its functions get exact shortcuts the same way (the message split, and the two regular
expressions of relaxed canonicalization, which return their input unchanged for most of a
rendered body): ~1.0 → ~0.55 ms a signature; each is compared with dkimpy's own on
arbitrary input in the tests, so anything else that uses dkimpy in the process (a
verification) gets the same answers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
from dkim import canonicalization

from mailer.config import DkimSettings
from mailer.domain.errors import ConfigError

#: Headers signed in every message, each over-signed (RFC 6376 8.15): listed in ``h=`` once
#: more than the message has it. The extra entry signs the absence of a further copy, so
#: a second ``Subject`` or ``List-Unsubscribe: <https://evil...>`` added (prepended or
#: appended) after signing breaks the signature; a header the message lacks is listed
#: once, which signs its absence the same way.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"Reply-To",
    b"MIME-Version",
    b"Content-Type",
    b"List-Id",
    b"Feedback-ID",
)

_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.M)


class _OpenSslKey(bytes):
    """The PEM text of a key (what dkimpy is given) carrying ``sign``: the key as
    ``cryptography`` loaded it, signing a SHA-256 digest (RSASSA-PKCS1-v1_5), which the
    wrapped dkimpy functions below call."""

    sign: Callable[[bytes], bytes]


def _openssl_key(pem: bytes) -> _OpenSslKey | None:
    """``pem`` with its key loaded by OpenSSL, or None when OpenSSL cannot use it as an
    RSA key (then dkimpy's own RSA signs, as before)."""
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, RSAPrivateKey):
        return None
    wrapped = _OpenSslKey(pem)
    wrapped.sign = functools.partial(key.sign, padding=PKCS1v15(), algorithm=Prehashed(SHA256()))
    return wrapped


_pure_parse = dkim.parse_pem_private_key
_pure_sign = dkim.RSASSA_PKCS1_v1_5_sign


def _parse_pem_private_key(data: bytes) -> Any:
    if isinstance(data, _OpenSslKey):
        return data  # the key dkimpy hands back to the signing function below
    return _pure_parse(data)


def _rsassa_pkcs1_v1_5_sign(hash: Any, private_key: Any) -> bytes:
    if isinstance(private_key, _OpenSslKey) and hash.name == "sha256":
        return private_key.sign(hash.digest())
    if isinstance(private_key, _OpenSslKey):
        private_key = _pure_parse(bytes(private_key))
    return _pure_sign(hash, private_key)  # type: ignore[no-any-return]


_pure_rfc822_parse = dkim.rfc822_parse
_pure_compress_whitespace = canonicalization.compress_whitespace
_pure_strip_trailing_whitespace = canonicalization.strip_trailing_whitespace


def _rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse``, without splitting and re-joining the body line by line
    when every LF of ``message`` ends a CRLF (the renderer's messages): the body is then
    the bytes after the first empty line as they are (~100 µs of a signature)."""
    at = message.find(b"\r\n\r\n")
    # (a message starting with CRLF has its empty line first: no headers)
    if at > 0 and not message.startswith(b"\r\n") and message.count(b"\n") == message.count(b"\r\n"):
        headers, _ = _pure_rfc822_parse(message[: at + 4])
        return headers, message[at + 4 :]
    return _pure_rfc822_parse(message)  # type: ignore[no-any-return]


def _compress_whitespace(content: bytes) -> bytes:
    """dkimpy's: every run of spaces and tabs made one space. Its ``[\\t ]+`` substitution
    also "replaces" every single space by itself (~900 in a message: ~130 µs); here tabs
    become spaces and two spaces one until none are left (each pass halves every run: a
    few passes in C, ~30 µs), and nothing is done without a tab or two spaces in a row."""
    if b"\t" in content:
        content = content.replace(b"\t", b" ")
    while b"  " in content:
        content = content.replace(b"  ", b" ")
    return content


def _strip_trailing_whitespace(content: bytes) -> bytes:
    """dkimpy's: spaces and tabs before a CRLF removed; nothing to do without any."""
    if b" \r\n" not in content and b"\t\r\n" not in content:
        return content
    return _pure_strip_trailing_whitespace(content)  # type: ignore[no-any-return]


dkim.parse_pem_private_key = _parse_pem_private_key
dkim.RSASSA_PKCS1_v1_5_sign = _rsassa_pkcs1_v1_5_sign
dkim.rfc822_parse = _rfc822_parse
canonicalization.compress_whitespace = _compress_whitespace
canonicalization.strip_trailing_whitespace = _strip_trailing_whitespace


def oversigned(message: bytes) -> list[bytes]:
    """The ``h=`` list for ``message``: every name of :data:`SIGNED_HEADERS` as many times
    as the message carries it, plus once."""
    head = message.split(b"\r\n\r\n", 1)[0]
    counts: dict[bytes, int] = {}
    for m in _FIELD_NAME.finditer(head):
        name = m.group(1).lower()
        counts[name] = counts.get(name, 0) + 1
    return [name for name in SIGNED_HEADERS for _ in range(counts.get(name.lower(), 0) + 1)]


class DkimSigner:
    """Signs messages for one selector and domain with one private key (read once)."""

    def __init__(self, *, key_file: Path, selector: str, domain: str) -> None:
        """Read and check the PEM private key in ``key_file``.

        Raises :class:`ConfigError` (key ``dkim.key_file``) when the file is missing,
        unreadable or not an RSA private key dkimpy can use, and (key ``dkim.domain`` /
        ``dkim.selector``) when those are empty.
        """
        if not domain.strip():
            raise ConfigError("dkim.domain: required when dkim.key_file is set", key="dkim.domain")
        if not selector.strip():
            raise ConfigError("dkim.selector: must not be empty", key="dkim.selector")
        if not (domain + selector).isascii():
            raise ConfigError("dkim.domain/selector: use the ASCII (xn--) form of the name", key="dkim.domain")
        try:
            key = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"dkim.key_file: cannot read {key_file}: {exc.strerror}", key="dkim.key_file") from exc
        try:
            dkim.crypto.parse_pem_private_key(key)
        except Exception as exc:  # dkimpy raises several unrelated types for a bad key
            raise ConfigError(
                f"dkim.key_file: {key_file} is not a PEM RSA private key ({exc})", key="dkim.key_file"
            ) from exc
        self._key: bytes = _openssl_key(key) or key
        self.key_file = key_file
        self.selector = selector.strip()
        self.domain = domain.strip().lower()

    @classmethod
    def from_settings(cls, settings: DkimSettings) -> DkimSigner | None:
        """A signer for ``settings``, or None when no ``key_file`` is configured.

        Raises :class:`ConfigError` as :meth:`__init__` does.
        """
        if settings.key_file is None:
            return None
        return cls(key_file=settings.key_file, selector=settings.selector, domain=settings.domain or "")

    def sign(self, message: bytes) -> bytes:
        """``message`` (CRLF line ends, as for SMTP DATA) with a ``DKIM-Signature`` header
        prepended. Raises :class:`ConfigError` when dkimpy cannot sign with the key."""
        try:
            header: bytes = dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._key,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=b"rsa-sha256",
                include_headers=oversigned(message),
                linesep=b"\r\n",
            )
        except dkim.DKIMException as exc:
            raise ConfigError(f"dkim: cannot sign with {self.selector}._domainkey.{self.domain}: {exc}") from exc
        return header + message

    def aligned_with(self, from_address: str) -> bool:
        """True when the From address's domain is the signing domain or below it
        (relaxed DMARC alignment, RFC 7489 3.1.1)."""
        domain = from_address.rpartition("@")[2].strip().rstrip(">").lower()
        return domain == self.domain or domain.endswith("." + self.domain)
