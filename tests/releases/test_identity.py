"""A client's sending identity: defaults from the From domain, its own DKIM key and
selectors (rotation), the DNS records it needs and their check against a stub resolver."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from mailer.config import DkimSettings, Settings
from mailer.domain.alignment import aligned, check_domain
from mailer.domain.errors import InputError
from mailer.releases import dns
from mailer.releases.clients import add_dkim_key, client_changes, client_fields, update_client
from mailer.releases.identity import identity_for
from mailer.runtime import Runtime
from mailer.store import releases as release_store
from mailer.store.db import transaction
from mailer.store.tables import Client
from tests.support.dkim import StubResolver
from tests.support.releases import CLIENT, seed


def client_row(**identity: str | None) -> Client:
    """A client row (not stored) with ``identity`` fields."""
    values = client_fields({**CLIENT, **identity}).values()
    return Client(**values)


def test_defaults_come_from_the_from_domain(settings: Settings) -> None:
    """Without settings of its own a client returns to bounces.<From domain> and names Message-IDs after it."""
    ident = identity_for(client_row(), settings)
    assert (ident.from_domain, ident.bounce_domain, ident.message_id_domain) == (
        "acme.example.com",
        "bounces.acme.example.com",
        "acme.example.com",
    )
    assert ident.dkim is None and ident.dkim_source == "none"
    assert ident.aligned_by() == ("spf",) and ident.alignment_problem() is None


def test_instance_dkim_is_the_default_and_own_key_wins(settings: Settings, dkim_keys: tuple[Path, bytes]) -> None:
    """The instance [dkim] key signs for a client without its own; a client's key signs as its From domain."""
    key_file, _ = dkim_keys
    configured = settings.model_copy(
        update={"dkim": DkimSettings(key_file=key_file, selector="inst", domain="agency.example.net")}
    )
    ident = identity_for(client_row(), configured)
    assert (ident.dkim_source, ident.dkim_domain) == ("instance", "agency.example.net")
    assert ident.dkim is not None and ident.dkim.selector == "inst"
    assert ident.aligned_by() == ("spf",)
    own = identity_for(client_row(dkim_key_file=str(key_file), dkim_selector="acme1"), configured)
    assert (own.dkim_source, own.dkim_domain) == ("client", "acme.example.com")
    assert own.dkim is not None and own.dkim.selector == "acme1"
    assert own.aligned_by() == ("dkim", "spf")
    signer = own.signer()
    assert signer is not None and (signer.domain, signer.selector) == ("acme.example.com", "acme1")


def test_explicit_domains_are_checked_and_kept(settings: Settings) -> None:
    """Explicit return-path and Message-ID domains are validated (IDN to xn--) and used as given."""
    ident = identity_for(
        client_row(bounce_domain="Bounces.Acme-Mail.example.com.", message_id_domain="bücher.example"), settings
    )
    assert ident.bounce_domain == "bounces.acme-mail.example.com"
    assert ident.message_id_domain == "xn--bcher-kva.example"
    with pytest.raises(InputError, match="bounce_domain 'not a domain'"):
        client_fields({**CLIENT, "bounce_domain": "not a domain"})
    with pytest.raises(InputError, match="DKIM selector"):
        client_fields({**CLIENT, "dkim_selector": "bad selector!"})
    with pytest.raises(InputError, match="dkim_key_file"):
        client_fields({**CLIENT, "dkim_key_file": "/nonexistent/key.pem"})


def test_relaxed_alignment() -> None:
    """Alignment holds for the same domain and for a subdomain either way, never for a look-alike."""
    assert aligned("acme.example.com", "bounces.acme.example.com")
    assert aligned("news.acme.example.com", "acme.example.com")
    assert not aligned("acme.example.com", "notacme.example.com")
    assert not aligned("acme.example.com", "")
    assert check_domain("EXAMPLE.org.") == "example.org"


def test_dkim_txt_matches_what_dkimpy_extracts(dkim_keys: tuple[Path, bytes]) -> None:
    """The TXT record computed from the private key carries the same p= as dkimpy's own (openssl) extraction."""
    key_file, record = dkim_keys
    mine = dns.dkim_txt(key_file)
    assert mine.startswith("v=DKIM1; k=rsa; p=")
    assert mine.rpartition("p=")[2] == record.decode().rpartition("p=")[2].strip()
    parts = re.findall(r'"([^"]*)"', dns.txt_strings(mine))
    assert len(parts) == 2 and all(len(part) <= 255 for part in parts)
    assert "".join(parts) == mine


def test_dkim_key_then_rotation_by_a_second_selector(rt: Runtime, tmp_path: Path) -> None:
    """The first key signs at once (file mode 0600); a second waits, signs after the switch, and the old one is retired."""
    seed(rt, tmp_path)
    settings = rt.settings.model_copy(update={"dkim": DkimSettings(key_dir=tmp_path / "keys")})
    with transaction(rt.sessions) as session:
        client = release_store.get_client(session, "acme")
        first = add_dkim_key(session, client, settings, selector="s1", now=rt.clock())
    assert first.signing and first.key_file == (tmp_path / "keys" / "acme" / "s1.pem").resolve()
    assert stat.S_IMODE(first.key_file.stat().st_mode) == 0o600
    assert first.record_name == "s1._domainkey.acme.example.com"
    assert len(first.txt) > 350  # a 2048-bit key
    with transaction(rt.sessions) as session:
        client = release_store.get_client(session, "acme")
        with pytest.raises(InputError, match="already has a key with selector s1"):
            add_dkim_key(session, client, settings, selector="s1", now=rt.clock())
        second = add_dkim_key(session, client, settings, selector="s2", now=rt.clock())
        assert not second.signing
        ident = identity_for(client, settings)
        assert ident.dkim is not None and ident.dkim.selector == "s1"
        assert [k.selector for k in ident.published_keys] == ["s1", "s2"]
        records = dns.records_for(ident, settings)
        assert [r.name for r in records if "_domainkey" in r.name] == [
            "s1._domainkey.acme.example.com",
            "s2._domainkey.acme.example.com",
        ]
        update_client(session, client, client_changes(client, {"dkim_selector": "s2"}, now=rt.clock()))
        ident = identity_for(client, settings)
        assert ident.dkim is not None and (ident.dkim.selector, ident.dkim.key_file) == ("s2", second.key_file)
        assert [k.selector for k in ident.other_keys] == ["s1"]
        with pytest.raises(InputError, match="s2 signs this client's mail"):
            client_changes(client, {}, retire_selector="s2", now=rt.clock())
        update_client(session, client, client_changes(client, {}, retire_selector="s1", now=rt.clock()))
        assert identity_for(client, settings).other_keys == ()


def test_dns_records_and_check_against_a_stub_resolver(settings: Settings, dkim_keys: tuple[Path, bytes]) -> None:
    """Every record is listed (DKIM, SPF, DMARC, MX); the check says ok, missing or different per record."""
    key_file, _ = dkim_keys
    configured = settings.model_copy(
        update={
            "sender": settings.sender.model_copy(update={"spf": ["ip4:192.0.2.10"]}),
            "bounces": settings.bounces.model_copy(update={"mx_host": "inbound.example.net"}),
        }
    )
    ident = identity_for(client_row(dkim_key_file=str(key_file), dkim_selector="acme1"), configured)
    records = dns.records_for(ident, configured)
    by_name = {(r.name, r.type): r.value for r in records}
    assert by_name[("bounces.acme.example.com", "TXT")] == "v=spf1 ip4:192.0.2.10 -all"
    assert by_name[("_dmarc.acme.example.com", "TXT")].startswith("v=DMARC1; p=none;")
    assert by_name[("bounces.acme.example.com", "MX")] == "10 inbound.example.net"
    dkim_value = by_name[("acme1._domainkey.acme.example.com", "TXT")]
    resolver = StubResolver(
        txt={
            # published with different spacing and an h= tag: still the same key
            "acme1._domainkey.acme.example.com": ["v=DKIM1; h=sha256; k=rsa; " + dkim_value.split("; ", 2)[2]],
            "bounces.acme.example.com": ["v=spf1 ip4:192.0.2.99 -all"],
        },
        mx={"bounces.acme.example.com": ["inbound.example.net"]},
    )
    status = {(c.record.name, c.record.type): c.status for c in dns.check_records(records, resolver)}
    assert status == {
        ("acme1._domainkey.acme.example.com", "TXT"): "ok",
        ("bounces.acme.example.com", "TXT"): "different",
        ("_dmarc.acme.example.com", "TXT"): "missing",
        ("bounces.acme.example.com", "MX"): "ok",
    }


def test_spf_defaults_to_the_relay_host(settings: Settings) -> None:
    """Without [sender] spf the SPF record names the relay: ip4: for an address, a: for a host name."""
    ident = identity_for(client_row(), settings)
    by_ip = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"host": "192.0.2.7"})})
    by_name = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"host": "relay.example.net"})})
    assert [r.value for r in dns.records_for(ident, by_ip) if r.value.startswith("v=spf1")] == [
        "v=spf1 ip4:192.0.2.7 -all"
    ]
    assert [r.value for r in dns.records_for(ident, by_name) if r.value.startswith("v=spf1")] == [
        "v=spf1 a:relay.example.net -all"
    ]
