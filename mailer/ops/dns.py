"""``mailer doctor``'s look at DNS: for each client's From domain an SPF record
(RFC 7208) and a DMARC record (RFC 7489), the DKIM key of ``[dkim]`` (RFC 6376), and an
MX for the bounce domain, so returned mail reaches the inbound server.

The resolver is a one-method-per-record :class:`Resolver` (dnspython by default; tests
hand in a dictionary). When no name server answers at all, the DNS checks are skipped
with one line: the machine running the doctor may have no DNS (a sandbox, CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import dns.exception
import dns.resolver

from mailer.config import Settings
from mailer.ops.checks import CheckResult, fail, ok, skip, warn


class DnsUnavailable(Exception):
    """No name server answered (not: the name has no such record)."""


class Resolver(Protocol):
    """The records the doctor reads; ``[]`` when the name has none. Raises
    :class:`DnsUnavailable` when DNS cannot be reached."""

    def txt(self, name: str) -> list[str]: ...

    def mx(self, name: str) -> list[str]: ...


class SystemResolver:
    """:class:`Resolver` over dnspython and the system's name servers."""

    def __init__(self, *, lifetime: float = 4.0) -> None:
        try:
            self._resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise DnsUnavailable("no name servers configured") from exc
        self._resolver.lifetime = lifetime

    def _answer(self, name: str, kind: str) -> list[str]:
        try:
            answer = self._resolver.resolve(name, kind)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsUnavailable(str(exc)) from exc
        if kind == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return [str(r.exchange).rstrip(".") for r in answer]

    def txt(self, name: str) -> list[str]:
        return self._answer(name, "TXT")

    def mx(self, name: str) -> list[str]:
        return self._answer(name, "MX")


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def check_dns(settings: Settings, from_addresses: Sequence[tuple[str, str]], resolver: Resolver) -> list[CheckResult]:
    """DNS checks for ``from_addresses`` ((client slug, From address) pairs) and the
    sender's settings; see the module docstring."""
    bounce_domain = settings.sender.bounce_domain
    try:
        mx = resolver.mx(bounce_domain)
    except DnsUnavailable as exc:
        return [skip("dns", f"DNS not reachable from here ({exc}); check the records from a connected machine")]
    results = []
    if mx:
        results.append(ok(f"dns.mx {bounce_domain}", ", ".join(mx)))
    else:
        results.append(fail(f"dns.mx {bounce_domain}", "no MX record: returned mail cannot reach the inbound server"))
    dkim = settings.dkim
    if dkim.key_file is not None and dkim.domain:
        name = f"{dkim.selector}._domainkey.{dkim.domain}"
        records = [r for r in resolver.txt(name) if "p=" in r]
        if records:
            results.append(ok(f"dns.dkim {name}", "public key published"))
        else:
            results.append(fail(f"dns.dkim {name}", "no DKIM key record (v=DKIM1; k=rsa; p=...)"))
    seen: set[str] = set()
    for slug, address in from_addresses:
        domain = _domain(address)
        if domain in seen:
            continue
        seen.add(domain)
        spf = [r for r in resolver.txt(domain) if r.lower().startswith("v=spf1")]
        if len(spf) == 1:
            results.append(ok(f"dns.spf {domain}", spf[0]))
        elif spf:
            results.append(fail(f"dns.spf {domain}", f"{len(spf)} SPF records (RFC 7208 4.5: exactly one)"))
        else:
            results.append(fail(f"dns.spf {domain}", f"no SPF record (client {slug})"))
        dmarc = [r for r in resolver.txt(f"_dmarc.{domain}") if r.lower().startswith("v=dmarc1")]
        if dmarc:
            results.append(ok(f"dns.dmarc {domain}", dmarc[0]))
        else:
            results.append(warn(f"dns.dmarc {domain}", f"no DMARC record at _dmarc.{domain} (client {slug})"))
    return results
