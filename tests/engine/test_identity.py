"""Each client sends as itself: two clients with their own keys and domains, through the
engine to a real SMTP server; every message verifies with its own d= and returns to its
own (aligned) return-path domain."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import dkim

from mailer.domain.alignment import aligned
from mailer.engine.dispatch import Dispatcher
from mailer.releases.clients import client_changes, client_fields, create_client, update_client
from mailer.releases.identity import identity_for
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.store import releases as release_store
from mailer.store.db import transaction
from tests.support.dkim import stub_dns_for
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime, release_status
from tests.support.faultsmtp import FaultSMTPServer


def _client(rt: Runtime, slug: str, domain: str, key_file: Path, selector: str) -> None:
    fields = client_fields(
        {
            "slug": slug,
            "name": f"{slug.title()} Council",
            "from_name": f"{slug.title()} Press",
            "from_address": f"press@{domain}",
            "postal_address": "1 Example Street, Springfield",
            "dkim_selector": selector,
            "dkim_key_file": str(key_file),
        }
    )
    with transaction(rt.sessions) as session:
        create_client(session, fields, now=rt.clock())


async def test_two_clients_each_sign_with_their_own_key_and_return_path(
    rt: Runtime,
    tmp_path: Path,
    smtp: FaultSMTPServer,
    dkim_keys: tuple[Path, bytes],
    other_dkim_keys: tuple[Path, bytes],
) -> None:
    """Releases of two clients: each message verifies with its client's d=, and its envelope sender is at
    bounces.<its From domain>."""
    ert = engine_runtime(rt, smtp.port, Clock())
    _client(ert, "north", "north.example.org", dkim_keys[0], "n2026")
    _client(ert, "south", "south.example.net", other_dkim_keys[0], "s2026")
    add_contacts(ert, tmp_path, ["a@example.com", "b@example.com"])
    approved_release(ert, [Variant("press-all", "list:press")], client_slug="north")
    approved_release(ert, [Variant("press-all", "list:press")], client_slug="south")
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    lookup = stub_dns_for(
        {
            "n2026._domainkey.north.example.org": dkim_keys[1],
            "s2026._domainkey.south.example.net": other_dkim_keys[1],
        }
    )
    assert len(smtp.raw) == 4
    seen: set[str] = set()
    for accepted, raw in zip(smtp.accepted, smtp.raw, strict=True):
        assert dkim.verify(raw, dnsfunc=lookup)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        from_domain = str(msg["From"]).rpartition("@")[2].rstrip(">")
        signature = str(msg["DKIM-Signature"]).replace(" ", "").replace("\r\n", "")
        assert f"d={from_domain};" in signature
        local, _, envelope_domain = accepted.sender.rpartition("@")
        assert local.startswith("bounces+") and envelope_domain == f"bounces.{from_domain}"
        assert aligned(from_domain, envelope_domain)
        assert str(msg["Message-ID"]).endswith(f"@{from_domain}>")
        seen.add(from_domain)
    assert seen == {"north.example.org", "south.example.net"}


async def test_a_client_key_that_cannot_be_read_pauses_its_release(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, dkim_keys: tuple[Path, bytes]
) -> None:
    """A client whose key file disappeared after approval: nothing goes out unsigned, the release pauses saying why."""
    ert = engine_runtime(rt, smtp.port, Clock())
    key = tmp_path / "moved.pem"
    key.write_bytes(dkim_keys[0].read_bytes())
    _client(ert, "north", "north.example.org", key, "n2026")
    add_contacts(ert, tmp_path, ["a@example.com"])
    release_id = approved_release(ert, [Variant("press-all", "list:press")], client_slug="north")
    key.unlink()
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert smtp.raw == []
    assert release_status(ert, release_id) == "paused"


async def test_key_rotation_signs_with_the_second_selector_after_the_switch(
    rt: Runtime,
    tmp_path: Path,
    smtp: FaultSMTPServer,
    dkim_keys: tuple[Path, bytes],
    other_dkim_keys: tuple[Path, bytes],
) -> None:
    """A second key given with its selector signs from then on; the first stays published (listed) until retired."""
    ert = engine_runtime(rt, smtp.port, Clock())
    _client(ert, "north", "north.example.org", dkim_keys[0], "n1")
    with transaction(ert.sessions) as session:
        client = release_store.get_client(session, "north")
        changes = client_changes(
            client, {"dkim_selector": "n2", "dkim_key_file": str(other_dkim_keys[0])}, now=ert.clock()
        )
        update_client(session, client, changes)
        assert [k.selector for k in identity_for(client, ert.settings).published_keys] == ["n2", "n1"]
    add_contacts(ert, tmp_path, ["a@example.com"])
    approved_release(ert, [Variant("press-all", "list:press")], client_slug="north")
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    (raw,) = smtp.raw
    assert dkim.verify(raw, dnsfunc=stub_dns_for({"n2._domainkey.north.example.org": other_dkim_keys[1]}))
    assert not dkim.verify(raw, dnsfunc=stub_dns_for({"n2._domainkey.north.example.org": dkim_keys[1]}))
