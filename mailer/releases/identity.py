"""A client's sending identity: who signs its mail (DKIM ``d=``, selector, key), where
its mail comes back to (the return-path domain of ``bounces+TOKEN@``) and whose name
its Message-IDs carry.

Gmail's and Yahoo's bulk-sender rules ask for DMARC alignment (RFC 7489 3.1): the From
domain must align with the DKIM ``d=`` domain or with the SPF-checked return-path
domain. With one instance-wide domain at most one client aligned; here each client has
its own, with defaults that align by construction:

============================  ==========================================================
DKIM key                      the client's own (``mailer clients dkim-key``), else the
                              instance ``[dkim]`` key, else none (unsigned)
DKIM ``d=``                   the client's ``dkim_domain``, else its From domain (the
                              instance key signs as ``[dkim] domain``)
return-path domain            the client's ``bounce_domain``, else ``bounces.`` + From domain
Message-ID / List-Id domain   the client's ``message_id_domain``, else ``[sender]
                              message_id_domain``, else the From domain
============================  ==========================================================

:func:`identity_for` builds it from a client row and the settings (no I/O; reading the
key happens in :meth:`SendingIdentity.signer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mailer.config import Settings
from mailer.domain.alignment import aligned, domain_of
from mailer.message.dkim import DkimSigner
from mailer.store.tables import Client

__all__ = ["DkimKey", "SendingIdentity", "identity_for"]


@dataclass(frozen=True)
class DkimKey:
    """One published key: its selector and private key file."""

    selector: str
    key_file: Path


@dataclass(frozen=True)
class SendingIdentity:
    """The effective identity of one client (defaults applied); see the module docstring."""

    client_slug: str
    from_domain: str
    #: the d= domain, None when nothing signs
    dkim_domain: str | None
    #: the key that signs, None when nothing signs
    dkim: DkimKey | None
    #: whose key signs: the client's own, the instance [dkim] one, or none
    dkim_source: Literal["client", "instance", "none"]
    #: keys published but not signing (rotation: the next one, or the previous one)
    other_keys: tuple[DkimKey, ...]
    bounce_domain: str
    message_id_domain: str
    #: why the alignment check is waived for this client (recorded), or None
    alignment_override: str | None = None

    @property
    def published_keys(self) -> tuple[DkimKey, ...]:
        """Every key whose TXT record must be in DNS: the signing one first."""
        return ((self.dkim,) if self.dkim is not None else ()) + self.other_keys

    def aligned_by(self) -> tuple[str, ...]:
        """Which of DKIM and SPF align the From domain (relaxed, RFC 7489 3.1.1)."""
        found: list[str] = []
        if self.dkim_domain is not None and aligned(self.from_domain, self.dkim_domain):
            found.append("dkim")
        if aligned(self.from_domain, self.bounce_domain):
            found.append("spf")
        return tuple(found)

    def alignment_problem(self) -> str | None:
        """Why DMARC cannot pass for this client's mail, with the ways out; None when
        DKIM or SPF aligns (the override is the caller's business)."""
        if self.aligned_by():
            return None
        signing = f"its DKIM domain {self.dkim_domain}" if self.dkim_domain else "a DKIM domain (no key signs its mail)"
        slug = self.client_slug
        return (
            f"client {slug}: the From domain {self.from_domain} is aligned with neither {signing} nor its "
            f"return-path domain {self.bounce_domain}, so DMARC fails (Gmail and Yahoo bulk-sender rules); "
            f"give it its own key (`mailer clients dkim-key {slug}`) or a return-path under its domain "
            f"(`mailer clients update {slug} --bounce-domain bounces.{self.from_domain}`), or, when your relay "
            f"signs for it, record that (`mailer clients update {slug} --alignment-override REASON`)"
        )

    def signer(self) -> DkimSigner | None:
        """The signer of this identity's key (read now), None when nothing signs.
        Raises :class:`~mailer.domain.errors.ConfigError` for an unusable key."""
        if self.dkim is None:
            return None
        return DkimSigner(key_file=self.dkim.key_file, selector=self.dkim.selector, domain=self.dkim_domain or "")


def identity_for(client: Client, settings: Settings) -> SendingIdentity:
    """The effective sending identity of ``client`` under ``settings`` (defaults applied)."""
    from_domain = domain_of(client.from_address)
    others = tuple(DkimKey(sel, Path(str(path))) for sel, path in sorted((client.dkim_other_keys or {}).items()))
    dkim: DkimKey | None
    dkim_domain: str | None
    source: Literal["client", "instance", "none"]
    if client.dkim_key_file:
        selector = client.dkim_selector or settings.dkim.selector
        dkim, source = DkimKey(selector, Path(client.dkim_key_file)), "client"
        dkim_domain = client.dkim_domain or from_domain
    elif settings.dkim.key_file is not None:
        # Without [dkim] domain the signer refuses to start (ConfigError naming the key).
        dkim = DkimKey(settings.dkim.selector, settings.dkim.key_file)
        dkim_domain, source = (settings.dkim.domain or "").strip().lower() or None, "instance"
    else:
        dkim, dkim_domain, source = None, None, "none"
    return SendingIdentity(
        client_slug=client.slug,
        from_domain=from_domain,
        dkim_domain=dkim_domain,
        dkim=dkim,
        dkim_source=source,
        other_keys=others,
        bounce_domain=client.bounce_domain or f"bounces.{from_domain}",
        message_id_domain=client.message_id_domain or settings.sender.message_id_domain or from_domain,
        alignment_override=client.alignment_override,
    )
