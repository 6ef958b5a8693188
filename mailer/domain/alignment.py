"""Domain names of a sending identity, and DMARC alignment between them (no I/O).

* :func:`check_domain` is the gate for a domain a person types (DKIM ``d=``, return-path,
  Message-ID): the IDNA A-label form (RFC 5890), lower case, no trailing dot, labels of
  letters, digits and ``-`` (RFC 1035 2.3.1), at most 253 characters.
* :func:`aligned` is relaxed DMARC alignment (RFC 7489 3.1.1): two domains align when
  their organizational domains are equal. Without a public-suffix list it is
  approximated from the safe side: one name equals the other or is a subdomain of it.
* :func:`domain_of` is the domain of an address in that same form.
"""

from __future__ import annotations

import re

import idna

from mailer.domain.errors import InputError

__all__ = ["aligned", "check_domain", "check_selector", "domain_of"]

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9](?:[a-z0-9_-]{0,62}))*")


def check_domain(value: str, what: str = "domain") -> str:
    """``value`` as a DNS name in A-label form (``xn--...``), lower case, without a
    trailing dot. Raises InputError naming ``what`` when it is not a host name with at
    least two labels."""
    name = value.strip().rstrip(".").lower()
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InputError(f"{what} {value!r}: no IDNA form ({exc})") from exc
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InputError(f"{what} {value!r}: not a domain name (like bounces.example.com)")
    return name


def check_selector(value: str) -> str:
    """A DKIM selector (RFC 6376 3.1: dot-separated sub-domain labels), lower case; else InputError."""
    selector = value.strip().lower()
    if not _SELECTOR.fullmatch(selector) or len(selector) > 63:
        raise InputError(f"DKIM selector {value!r}: use letters, digits, '-' and '_' (max 63), e.g. mailer2026")
    return selector


def domain_of(address: str) -> str:
    """The domain of ``address`` as :func:`check_domain` gives it (InputError when it has none)."""
    domain = address.strip().strip("<>").rpartition("@")[2]
    return check_domain(domain, "the domain of " + repr(address))


def aligned(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are in relaxed DMARC alignment (see the module docstring)."""
    x, y = a.lower().strip().rstrip("."), b.lower().strip().rstrip(".")
    if not x or not y:
        return False
    return x == y or x.endswith("." + y) or y.endswith("." + x)
