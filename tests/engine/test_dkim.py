"""DKIM through the delivery engine: what reaches the relay verifies and signs both
List-Unsubscribe headers."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest

from mailer.domain.errors import ConfigError
from mailer.engine.dispatch import Dispatcher
from mailer.message.dkim import DkimSigner
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from tests.support.dkim import stub_dns
from tests.support.engine import Clock, Variant, add_contacts, approved_release, engine_runtime
from tests.support.faultsmtp import FaultSMTPServer

DOMAIN = "acme.example.com"
SELECTOR = "press2026"


async def send_signed(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, key_file: Path, addresses: list[str]
) -> tuple[Runtime, int]:
    """The instance [dkim] key configured, a release to ``addresses`` sent by one run of
    the engine; the runtime and the release's id."""
    ert = engine_runtime(
        rt, smtp.port, Clock(), dkim__key_file=str(key_file), dkim__selector=SELECTOR, dkim__domain=DOMAIN
    )
    add_contacts(ert, tmp_path, addresses)
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    await Dispatcher(ert, pool).run_once()
    await pool.close()
    return ert, rid


async def test_engine_signs_every_message(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, dkim_keys: tuple[Path, bytes]
) -> None:
    """With the instance [dkim] key configured (the default of a client without its own), every
    message at the relay carries a signature that verifies and whose h= covers From,
    List-Unsubscribe and List-Unsubscribe-Post."""
    key_file, record = dkim_keys
    await send_signed(rt, tmp_path, smtp, key_file, [f"d{i}@example.com" for i in range(4)])
    assert len(smtp.raw) == 4
    for raw in smtp.raw:
        assert dkim.verify(raw, dnsfunc=stub_dns(record))
        header = raw.split(b"\r\n\r\n", 1)[0].decode()
        signed = re.search(r"\bh=([^;]+)", header.replace("\r\n", ""))
        assert signed is not None
        names = {h.strip().lower() for h in signed.group(1).split(":")}
        assert {"from", "list-unsubscribe", "list-unsubscribe-post", "message-id"} <= names


async def test_the_render_process_signs_not_the_event_loop(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, dkim_keys: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing in the sending process is made to fail: every message still arrives signed and verifying (the render process signed it, ~1 ms a message off the event loop)."""

    def not_here(self: DkimSigner, message: bytes) -> bytes:
        raise AssertionError("signed on the sending process's event loop")

    monkeypatch.setattr(DkimSigner, "sign", not_here)
    key_file, record = dkim_keys
    await send_signed(rt, tmp_path, smtp, key_file, [f"e{i}@example.com" for i in range(3)])
    assert len(smtp.raw) == 3
    for raw in smtp.raw:
        assert raw.startswith(b"DKIM-Signature:")
        assert dkim.verify(raw, dnsfunc=stub_dns(record))


async def test_a_key_the_render_process_cannot_read_is_a_config_error(tmp_path: Path) -> None:
    """A job naming a key file that is gone comes back from the render process as the ConfigError naming dkim.key_file (not a render error of that message)."""
    from mailer.message import AsyncRenderer, Renderer, RenderJob, RenderLimits, RenderWorker
    from tests.support.constants import TEMPLATES
    from tests.support.render import ANN, DATE, make_spec

    worker = RenderWorker(TEMPLATES, Renderer(TEMPLATES).sources, RenderLimits())
    renders = AsyncRenderer(worker)
    job = RenderJob(
        ANN,
        ANN.email,
        "https://news.acme.example.com/u/tok",
        "<k1.42@mail.acme.example.com>",
        date=DATE,
        dkim=(str(tmp_path / "gone.pem"), SELECTOR, DOMAIN),
    )
    try:
        with pytest.raises(ConfigError) as caught:
            await renders.render(make_spec(), job)
    finally:
        worker.close()
    assert caught.value.key == "dkim.key_file"
    assert "gone.pem" in str(caught.value)


async def test_a_key_lost_while_sending_pauses_the_release_and_loses_nothing(
    rt: Runtime, tmp_path: Path, smtp: FaultSMTPServer, dkim_keys: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key file is gone by the time the render process signs: nothing is sent unsigned, no row fails, the release is paused with the reason and its rows are queued again."""
    from dataclasses import replace

    from mailer.engine.planner import Planner
    from mailer.store.tables import Release
    from tests.support.engine import deliveries

    checked = Planner.prepared

    def key_gone_since(self: Planner, release_id: int):  # type: ignore[no-untyped-def]
        ready = checked(self, release_id)  # read and checked here, as at the start
        assert ready.dkim is not None
        return replace(ready, dkim=(str(tmp_path / "rotated-away.pem"), *ready.dkim[1:]))

    monkeypatch.setattr(Planner, "prepared", key_gone_since)
    ert, rid = await send_signed(rt, tmp_path, smtp, dkim_keys[0], [f"k{i}@example.com" for i in range(5)])
    assert smtp.raw == []
    assert {r.status for r in deliveries(ert, rid).values()} == {"queued"}
    with ert.sessions() as session:
        release = session.get(Release, rid)
        assert release is not None and release.status == "paused"
        assert "cannot sign its messages" in (release.pause_reason or "")
        assert "rotated-away.pem" in (release.pause_reason or "")
