"""DKIM through the delivery engine: what reaches the relay verifies and signs both
List-Unsubscribe headers."""

from __future__ import annotations

import re
from pathlib import Path

import dkim

from mailer.engine.dispatch import Dispatcher
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from tests.support.dkim import stub_dns
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer

DOMAIN = "acme.example.com"
SELECTOR = "press2026"


async def test_engine_signs_every_message(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, dkim_keys: tuple[Path, bytes]
) -> None:
    """With the instance [dkim] key configured (the default of a client without its own), every
    message at the relay carries a signature that verifies and whose h= covers From,
    List-Unsubscribe and List-Unsubscribe-Post."""
    key_file, record = dkim_keys
    ert = engine_runtime(
        rt, smtp.port, Clock(), dkim__key_file=str(key_file), dkim__selector=SELECTOR, dkim__domain=DOMAIN
    )
    add_contacts(ert, tmp_path, [f"d{i}@example.com" for i in range(4)])
    approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    assert len(smtp.raw) == 4
    for raw in smtp.raw:
        assert dkim.verify(raw, dnsfunc=stub_dns(record))
        header = raw.split(b"\r\n\r\n", 1)[0].decode()
        signed = re.search(r"\bh=([^;]+)", header.replace("\r\n", ""))
        assert signed is not None
        names = {h.strip().lower() for h in signed.group(1).split(":")}
        assert {"from", "list-unsubscribe", "list-unsubscribe-post", "message-id"} <= names
