"""Internationalized addresses (issue 12, item 9): an IDN domain goes as IDNA (xn--) in
the envelope and the To header; a non-ASCII local part goes only with SMTPUTF8 (RFC 6531)
and otherwise fails with the reason, at submit already. Real aiosmtpd servers, both SMTP
clients, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from enginekit import (
    Clock,
    Variant,
    add_contacts,
    approved_release,
    deliveries,
    engine_runtime,
)
from test_releases import BASE_URL, create, seed

from mailer.audience import contacts
from mailer.config import Settings, SmtpSettings, WebSettings
from mailer.domain.addresses import ascii_domain, needs_smtputf8, smtp_envelope
from mailer.domain.errors import WorkflowError
from mailer.domain.states import Outcome
from mailer.engine.dispatch import Dispatcher
from mailer.message.headers import encode_address
from mailer.releases.approval import submit_release
from mailer.releases.plan import renderer_for
from mailer.runtime import Runtime
from mailer.smtp.factory import make_transport
from mailer.smtp.server import BoundController, bind_listener
from mailer.store.db import transaction
from mailer.store.suppressions import is_suppressed

IDN_DOMAIN = "jose@bücher.example.com"  # domain in Unicode: fine without SMTPUTF8
IDN_DOMAIN_ASCII = "jose@xn--bcher-kva.example.com"
UTF8_LOCAL = "josé@example.com"  # local part in Unicode: only with SMTPUTF8
BOTH = "zoë@bücher.example.com"
BOTH_ASCII_DOMAIN = "zoë@xn--bcher-kva.example.com"
SENDER = "bounces+1-0123456789abcdef@bounces.example.com"
MESSAGE = b"From: a@example.org\r\nTo: x@example.com\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nHello.\r\n"


# --- a recording aiosmtpd server ---------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    mail_options: list[str]
    data: bytes


@dataclass
class Recorder:
    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(
            Received(
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                envelope.original_content or b"",
            )
        )
        return "250 2.0.0 OK"


@asynccontextmanager
async def relay(*, smtputf8: bool) -> AsyncIterator[tuple[int, Recorder]]:
    """A real aiosmtpd server on a free port that does or does not offer SMTPUTF8."""
    recorder = Recorder()
    sock = bind_listener("127.0.0.1", 0)
    port = sock.getsockname()[1]
    controller = BoundController(recorder, sock, enable_SMTPUTF8=smtputf8)
    await asyncio.to_thread(controller.start)
    try:
        yield port, recorder
    finally:
        await asyncio.to_thread(controller.stop)


def smtp_settings(port: int, **extra: Any) -> SmtpSettings:
    base = {"host": "127.0.0.1", "port": port, "command_timeout": 5, "data_timeout": 5}
    return Settings.model_validate({"smtp": base | extra}).smtp


# --- the address forms -------------------------------------------------------------------


def test_address_forms() -> None:
    """The IDNA form changes only the domain; only a non-ASCII local part needs SMTPUTF8."""
    assert ascii_domain(IDN_DOMAIN) == IDN_DOMAIN_ASCII
    assert ascii_domain(BOTH) == BOTH_ASCII_DOMAIN
    assert ascii_domain("ann@example.com") == "ann@example.com"
    assert not needs_smtputf8(IDN_DOMAIN) and needs_smtputf8(UTF8_LOCAL)
    assert encode_address("José Peña", IDN_DOMAIN) == f"=?utf-8?b?Sm9zw6kgUGXDsWE=?= <{IDN_DOMAIN_ASCII}>"
    assert encode_address("Zoë", BOTH).endswith(f"<{BOTH_ASCII_DOMAIN}>")
    refusal = smtp_envelope(SENDER, UTF8_LOCAL, setting="auto", offered=False)
    assert isinstance(refusal, str) and "SMTPUTF8" in refusal and UTF8_LOCAL in refusal
    assert "smtp.smtputf8" in str(smtp_envelope(SENDER, UTF8_LOCAL, setting="no", offered=True))


# --- the transports against real servers ---------------------------------------------------


async def test_idn_domain_goes_as_idna_without_smtputf8() -> None:
    """To a relay without SMTPUTF8, jose@bücher.example.com is sent as jose@xn--bcher-kva.example.com."""
    async with relay(smtputf8=False) as (port, recorder):
        pool = make_transport(smtp_settings(port))
        try:
            result = await pool.send(SENDER, IDN_DOMAIN, MESSAGE)
        finally:
            await pool.close()
    assert result.outcome is Outcome.SENT, result
    [got] = recorder.messages
    assert got.recipients == [IDN_DOMAIN_ASCII] and "SMTPUTF8" not in got.mail_options


async def test_non_ascii_local_part_without_smtputf8_fails_with_the_reason() -> None:
    """A relay that does not offer SMTPUTF8 never sees josé@...: the send fails naming SMTPUTF8, and the connection goes on."""
    async with relay(smtputf8=False) as (port, recorder):
        pool = make_transport(smtp_settings(port))
        try:
            refused = await pool.send(SENDER, UTF8_LOCAL, MESSAGE)
            after = await pool.send(SENDER, "ann@example.com", MESSAGE)
        finally:
            await pool.close()
    assert refused.outcome is Outcome.FAILED and not refused.hard
    assert "SMTPUTF8" in refused.reply and UTF8_LOCAL in refused.reply
    assert after.outcome is Outcome.SENT
    assert [m.recipients for m in recorder.messages] == [["ann@example.com"]]


async def test_non_ascii_local_part_goes_with_smtputf8() -> None:
    """A relay offering SMTPUTF8 gets MAIL FROM ... SMTPUTF8 and zoë@xn--bcher-kva.example.com."""
    async with relay(smtputf8=True) as (port, recorder):
        pool = make_transport(smtp_settings(port))
        try:
            result = await pool.send(SENDER, BOTH, MESSAGE)
        finally:
            await pool.close()
    assert result.outcome is Outcome.SENT, result
    [got] = recorder.messages
    assert got.recipients == [BOTH_ASCII_DOMAIN] and "SMTPUTF8" in got.mail_options


async def test_smtputf8_no_never_uses_it() -> None:
    """With smtp.smtputf8 = "no" a non-ASCII local part fails even where the relay offers SMTPUTF8."""
    async with relay(smtputf8=True) as (port, recorder):
        pool = make_transport(smtp_settings(port, smtputf8="no"))
        try:
            result = await pool.send(SENDER, UTF8_LOCAL, MESSAGE)
        finally:
            await pool.close()
    assert result.outcome is Outcome.FAILED and 'smtp.smtputf8 is "no"' in result.reply
    assert recorder.messages == []


# --- end to end: the engine, the ledger, the To header ----------------------------------------


async def run_release(rt: Runtime, tmp_path: Path, port: int, *, smtputf8: str) -> dict[str, Any]:
    ert = engine_runtime(rt, port, Clock(datetime.now(UTC)), smtp__smtputf8=smtputf8)
    add_contacts(ert, tmp_path, [IDN_DOMAIN, UTF8_LOCAL, "ann@example.com"])
    rid = approved_release(ert, [Variant("press-all", "list:press")])
    pool = make_transport(ert.settings.smtp)
    try:
        await Dispatcher(ert, pool).run_once()
    finally:
        await pool.close()
    return {"rt": ert, "rows": deliveries(ert, rid)}


async def test_release_to_idn_addresses_through_an_smtputf8_relay(rt: Runtime, tmp_path: Path) -> None:
    """All three recipients get their message; the To headers carry the xn-- domain and the UTF-8 local part."""
    async with relay(smtputf8=True) as (port, recorder):
        done = await run_release(rt, tmp_path, port, smtputf8="yes")
    assert {e: r.status for e, r in done["rows"].items()} == {
        IDN_DOMAIN: "sent",
        UTF8_LOCAL: "sent",
        "ann@example.com": "sent",
    }
    by_rcpt = {m.recipients[0]: m for m in recorder.messages}
    assert set(by_rcpt) == {IDN_DOMAIN_ASCII, UTF8_LOCAL, "ann@example.com"}
    head = {rcpt: m.data.split(b"\r\n\r\n", 1)[0] for rcpt, m in by_rcpt.items()}
    assert (
        f"<{IDN_DOMAIN_ASCII}>".encode() in head[IDN_DOMAIN_ASCII] and "bücher".encode() not in head[IDN_DOMAIN_ASCII]
    )
    assert f"<{UTF8_LOCAL}>".encode() in head[UTF8_LOCAL]
    assert "SMTPUTF8" in by_rcpt[UTF8_LOCAL].mail_options
    assert "SMTPUTF8" not in by_rcpt[IDN_DOMAIN_ASCII].mail_options


async def test_release_through_a_relay_without_smtputf8(rt: Runtime, tmp_path: Path) -> None:
    """Without SMTPUTF8 the IDN domain still goes; josé@... fails with the reason and is not suppressed."""
    async with relay(smtputf8=False) as (port, recorder):
        done = await run_release(rt, tmp_path, port, smtputf8="auto")
    rows = done["rows"]
    assert (rows[IDN_DOMAIN].status, rows["ann@example.com"].status) == ("sent", "sent")
    assert rows[UTF8_LOCAL].status == "failed" and "SMTPUTF8" in (rows[UTF8_LOCAL].last_reply or "")
    assert {m.recipients[0] for m in recorder.messages} == {IDN_DOMAIN_ASCII, "ann@example.com"}
    with transaction(done["rt"].sessions) as session:
        assert not is_suppressed(session, UTF8_LOCAL)


# --- submit ---------------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with an https unsubscribe base (RFC 8058 needs https)."""
    return settings.model_copy(update={"web": WebSettings(base_url=BASE_URL)})


def add_person(rt: Runtime, tmp_path: Path, email: str) -> None:
    path = tmp_path / "more.csv"
    path.write_text(f"email,first_name,beats\n{email},José,foreign-policy\n", encoding="utf-8")
    assert contacts.import_csv(rt.sessions, path, list_slug="press", now=rt.clock()).accepted == 1


def try_submit(rt: Runtime, rid: int, smtputf8: str) -> None:
    settings = rt.settings.model_copy(update={"smtp": rt.settings.smtp.model_copy(update={"smtputf8": smtputf8})})
    with transaction(rt.sessions) as session:
        submit_release(session, rid, actor="pat", renderer=renderer_for(settings), settings=settings, now=rt.clock())


@pytest.mark.parametrize("setting", ["auto", "no"])
def test_submit_refuses_non_ascii_local_parts_unless_the_relay_offers_smtputf8(
    rt: Runtime, tmp_path: Path, setting: str
) -> None:
    """An audience with josé@... fails submit with the reason while smtp.smtputf8 is not "yes"."""
    seed(rt, tmp_path)
    add_person(rt, tmp_path, "josé@daily.example.com")
    rid = create(rt, renderer_for(rt.settings))
    with pytest.raises(WorkflowError) as info:
        try_submit(rt, rid, setting)
    message = str(info.value)
    assert "josé@daily.example.com" in message and "SMTPUTF8" in message and f'"{setting}"' in message
    assert "\n" not in message


def test_submit_accepts_them_when_the_relay_offers_smtputf8(rt: Runtime, tmp_path: Path) -> None:
    """With smtp.smtputf8 = "yes" the same audience submits."""
    seed(rt, tmp_path)
    add_person(rt, tmp_path, "josé@daily.example.com")
    rid = create(rt, renderer_for(rt.settings))
    try_submit(rt, rid, "yes")


def test_submit_accepts_idn_domains(rt: Runtime, tmp_path: Path) -> None:
    """An IDN domain alone needs no SMTPUTF8: submit passes with the default setting."""
    seed(rt, tmp_path)
    add_person(rt, tmp_path, IDN_DOMAIN)
    rid = create(rt, renderer_for(rt.settings))
    try_submit(rt, rid, "auto")
