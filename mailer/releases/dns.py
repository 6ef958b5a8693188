"""What a client's domains must publish in DNS, DKIM keys made for it, and a check of
what DNS answers.

* :func:`generate_key` writes a 2048-bit RSA key (``openssl genrsa``, as dkimpy's own
  ``dknewkey`` does) with mode 0600; :func:`dkim_txt` is its TXT record
  (``v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo, base64>``, RFC 6376 3.6.1), computed here
  from the private key.
* :func:`records_for` lists every record: each published key's TXT at
  ``SELECTOR._domainkey.D``, SPF for the relay at the return-path domain (the domain SPF
  checks, RFC 7208 2.4), a DMARC starter record (``p=none``, reports to postmaster@ the
  return-path domain, which the bounce receiver keeps for staff), and the MX of the
  return-path domain pointing at the inbound server (``[bounces] mx_host``).
* :func:`check_records` compares them with a :class:`Resolver` (injectable: the tests
  never touch the network; :class:`SystemResolver` asks the system's DNS via dnspython).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import dkim.crypto

from mailer.config import Settings
from mailer.domain.errors import ConfigError, InputError
from mailer.releases.identity import SendingIdentity

__all__ = [
    "DnsCheck",
    "DnsRecord",
    "Resolver",
    "SystemResolver",
    "check_records",
    "dkim_txt",
    "generate_key",
    "records_for",
    "txt_strings",
]

KEY_BITS = 2048


@dataclass(frozen=True)
class DnsRecord:
    """One record to publish: owner name, type, value, and what it is for."""

    name: str
    type: Literal["TXT", "MX"]
    value: str
    purpose: str


@dataclass(frozen=True)
class DnsCheck:
    """A record compared with what DNS answered: ``ok``, ``missing`` or ``different``."""

    record: DnsRecord
    status: Literal["ok", "missing", "different"]
    found: tuple[str, ...]


class Resolver(Protocol):
    """The DNS answers a check needs; an empty list for a name without such records."""

    def txt(self, name: str) -> list[str]:
        """The TXT records of ``name``, each with its strings joined."""
        ...

    def mx(self, name: str) -> list[str]:
        """The MX target host names of ``name`` (lower case, no trailing dot)."""
        ...


class SystemResolver:
    """:class:`Resolver` over the system's DNS (dnspython); a failed lookup is an empty answer."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        import dns.resolver

        self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout

    def _answer(self, name: str, rtype: str) -> list[object]:
        import dns.exception

        try:
            return list(self._resolver.resolve(name, rtype))
        except dns.exception.DNSException:
            return []

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._answer(name, "TXT")]  # type: ignore[attr-defined]

    def mx(self, name: str) -> list[str]:
        return [str(r.exchange).rstrip(".").lower() for r in self._answer(name, "MX")]  # type: ignore[attr-defined]


# --- keys -------------------------------------------------------------------------------


def generate_key(path: Path) -> None:
    """Write a new 2048-bit RSA private key (PEM) to ``path``, mode 0600, refusing to
    overwrite one. Raises InputError when the file exists, ConfigError when openssl is
    missing or fails or the folder cannot be written."""
    if path.exists():
        raise InputError(f"{path} exists: choose another selector (--selector)")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError("openssl is needed to generate DKIM keys (apt-get install openssl)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"dkim.key_dir: cannot write {path}: {exc.strerror}", key="dkim.key_dir") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            done = subprocess.run([openssl, "genrsa", str(KEY_BITS)], capture_output=True, timeout=120, check=False)
            if done.returncode != 0 or b"PRIVATE KEY" not in done.stdout:
                raise ConfigError(f"openssl genrsa failed: {done.stderr.decode('utf-8', 'replace').strip()}")
            fh.write(done.stdout)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


# rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters, RFC 3279 2.3.1
_RSA_ALGORITHM = _der(0x30, bytes.fromhex("06092a864886f70d010101") + bytes.fromhex("0500"))


def dkim_txt(key_file: Path) -> str:
    """The DKIM TXT record of the private key in ``key_file``. Raises ConfigError when it
    is unreadable or not an RSA key."""
    try:
        key = dkim.crypto.parse_pem_private_key(key_file.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read the DKIM key {key_file}: {exc.strerror}") from exc
    except Exception as exc:  # dkimpy raises several unrelated types for a bad key
        raise ConfigError(f"{key_file} is not a PEM RSA private key ({exc})") from exc
    public = _der(0x30, _der_int(key["modulus"]) + _der_int(key["publicExponent"]))
    spki = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\x00" + public))
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode("ascii")


def txt_strings(value: str) -> str:
    """``value`` as a zone file writes a TXT record: quoted strings of at most 255
    characters each (RFC 1035 3.3.14), which DNS joins back."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255)) or '""'


# --- records ----------------------------------------------------------------------------


def _spf_mechanisms(settings: Settings) -> list[str]:
    if settings.sender.spf:
        return list(settings.sender.spf)
    host = settings.smtp.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return [f"a:{host}"]
    return [f"ip{address.version}:{address}"]


def records_for(identity: SendingIdentity, settings: Settings) -> list[DnsRecord]:
    """Every record ``identity`` needs (see the module docstring). Raises ConfigError for
    a key file that cannot be read."""
    records = [
        DnsRecord(
            f"{key.selector}._domainkey.{identity.dkim_domain}",
            "TXT",
            dkim_txt(key.key_file),
            "DKIM key" + (" (signing)" if key == identity.dkim else " (published, not signing)"),
        )
        for key in identity.published_keys
        if identity.dkim_domain
    ]
    spf = "v=spf1 " + " ".join(_spf_mechanisms(settings)) + " -all"
    records.append(DnsRecord(identity.bounce_domain, "TXT", spf, "SPF of the return-path domain (the relay)"))
    dmarc = f"v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:postmaster@{identity.bounce_domain}"
    records.append(DnsRecord(f"_dmarc.{identity.from_domain}", "TXT", dmarc, "DMARC starter record (p=none)"))
    mx = (settings.bounces.mx_host or "").strip().rstrip(".").lower()
    records.append(
        DnsRecord(
            identity.bounce_domain,
            "MX",
            f"10 {mx}" if mx else "10 (set [bounces] mx_host)",
            "MX of the return-path domain: the inbound server (`mailer bounces serve`)",
        )
    )
    return records


def _squeeze(value: str) -> str:
    return "".join(value.split()).lower()


def check_records(records: list[DnsRecord], resolver: Resolver) -> list[DnsCheck]:
    """Each record compared with what ``resolver`` answers.

    DKIM: the TXT at the name must carry the same ``p=`` key. SPF and DMARC: a record of
    that kind must exist (``v=spf1`` / ``v=DMARC1``) and, for SPF, name every mechanism
    (another policy than ours is ``different``). MX: the inbound host must be among the
    targets (any MX passes when ``mx_host`` is not configured).
    """
    checks: list[DnsCheck] = []
    for record in records:
        if record.type == "MX":
            hosts = resolver.mx(record.name)
            want = record.value.split(" ", 1)[1]
            status: Literal["ok", "missing", "different"]
            if not hosts:
                status = "missing"
            elif want.startswith("(") or want in hosts:
                status = "ok"
            else:
                status = "different"
            checks.append(DnsCheck(record, status, tuple(hosts)))
            continue
        answers = resolver.txt(record.name)
        kind = record.value.split(";", 1)[0].split(" ", 1)[0].lower()  # v=dkim1, v=spf1, v=dmarc1
        mine = [a for a in answers if _squeeze(a).startswith(kind)]
        if not mine:
            checks.append(DnsCheck(record, "missing", tuple(answers)))
            continue
        if kind == "v=dkim1":
            want_key = _squeeze(record.value).rpartition("p=")[2]
            same = any(_squeeze(a).rpartition("p=")[2].split(";")[0] == want_key for a in mine)
        elif kind == "v=spf1":
            wanted = [m.lower() for m in record.value.split()[1:-1]]
            same = any(all(m in a.lower().split() for m in wanted) for a in mine)
        else:
            same = True
        checks.append(DnsCheck(record, "ok" if same else "different", tuple(mine)))
    return checks
