"""Suppressions and erasure: the domain operations and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from typer.testing import CliRunner

from mailer.audience import contacts, erasure, suppressions, unsubscribes
from mailer.cli.root import app as cli_app
from mailer.config import DatabaseSettings, Settings
from mailer.domain.errors import InputError, NotFoundError
from mailer.domain.states import GLOBAL_SCOPE, DeliveryStatus, SuppressionReason, email_hash
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store import suppressions as suppression_store
from mailer.store.db import transaction
from mailer.store.tables import (
    Contact,
    ContactBeat,
    ContactTag,
    Delivery,
    DeliveryEvent,
    ListMember,
    Suppression,
    SuppressionLog,
)
from tests.support.constants import FIXED_NOW
from tests.support.web import DANA, seed_delivery

HEADER = "email,first_name,last_name,outlet,beats,tags\n"
DANA_ROW = f"{DANA},Dana,Reyes,Harbor Ledger,politics|business,staff\n"


def import_rows(rt: Runtime, tmp_path: Path, *rows: str) -> contacts.ImportResult:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return contacts.import_csv(rt.sessions, path, list_slug="press", now=FIXED_NOW)


def cli(rt: Runtime, *args: str) -> tuple[int, str]:
    """Run ``mailer ARGS`` in-process against the test database; (exit code, stdout)."""
    result = CliRunner().invoke(cli_app, list(args), env={"MAILER_DATABASE__URL": rt.settings.database.url})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


# --- domain operations --------------------------------------------------------------------


def test_suppress_and_lift_are_logged_with_actor(rt: Runtime) -> None:
    """Staff add then lift a suppression; both are logged with who and why; repeats are no-ops."""
    with transaction(rt.sessions) as s:
        assert suppressions.suppress(
            s,
            "Dana@HarborLedger.example.com",
            reason=SuppressionReason.MANUAL,
            source="cli",
            now=FIXED_NOW,
            actor="pat",
            note="asked by phone",
        )
        assert not suppressions.suppress(s, DANA, reason=SuppressionReason.MANUAL, source="cli", now=FIXED_NOW)
        assert suppression_store.is_suppressed(s, DANA)
    with transaction(rt.sessions) as s:
        suppressions.lift(s, DANA, scope=GLOBAL_SCOPE, reason="re-subscribed in writing", actor="sam", now=FIXED_NOW)
        assert not suppression_store.is_suppressed(s, DANA)
        log = s.execute(
            select(SuppressionLog.action, SuppressionLog.actor, SuppressionLog.reason).order_by(SuppressionLog.id)
        ).all()
    assert log == [("added", "pat", "asked by phone"), ("removed", "sam", "re-subscribed in writing")]


def test_lift_needs_a_reason_and_an_existing_suppression(rt: Runtime) -> None:
    """Lifting without a reason, or what is not suppressed in that scope, is refused."""
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, DANA, reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW)
    with transaction(rt.sessions) as s, pytest.raises(InputError):
        suppressions.lift(s, DANA, scope=GLOBAL_SCOPE, reason="  ", actor="sam", now=FIXED_NOW)
    with transaction(rt.sessions) as s, pytest.raises(NotFoundError):
        suppressions.lift(s, DANA, scope="acme", reason="wrong scope", actor="sam", now=FIXED_NOW)
    with transaction(rt.sessions) as s:
        assert suppression_store.is_suppressed(s, DANA)


def test_scope_must_name_a_client(rt: Runtime) -> None:
    """A per-client suppression for a client that does not exist is refused."""
    with transaction(rt.sessions) as s, pytest.raises(NotFoundError):
        suppressions.suppress(s, DANA, reason=SuppressionReason.MANUAL, source="t", now=FIXED_NOW, scope="nobody")


def test_reimport_never_lifts_a_suppression(rt: Runtime, tmp_path: Path) -> None:
    """An unsubscribed contact re-imported (and re-listed) stays suppressed."""
    import_rows(rt, tmp_path, DANA_ROW)
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, DANA, reason=SuppressionReason.UNSUBSCRIBED, source="one-click", now=FIXED_NOW)
    result = import_rows(rt, tmp_path, DANA_ROW)
    assert result.updated == 1
    with transaction(rt.sessions) as s:
        assert suppression_store.is_suppressed(s, DANA)
        assert s.scalar(select(Suppression.reason)) == "unsubscribed"


def test_export_is_formula_safe(rt: Runtime) -> None:
    """Export writes every suppression as CSV; a note that looks like a formula is neutralized."""
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, DANA, reason=SuppressionReason.MANUAL, source='=HYPERLINK("http://x")', now=FIXED_NOW)
        buffer = io.StringIO()
        assert suppressions.export_csv(s, buffer) == 1
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert rows[0] == list(suppressions.EXPORT_COLUMNS)
    assert rows[1][:4] == [DANA, email_hash(DANA), "*", "manual"]
    assert rows[1][4].startswith("'=")


# --- erasure --------------------------------------------------------------------------------


def test_erase_leaves_a_suppression_and_no_personal_data(rt: Runtime, tmp_path: Path) -> None:
    """Erase clears the contact, its labels, deliveries, events and suppressions of the address; a global 'erased' suppression stays."""
    import_rows(rt, tmp_path, DANA_ROW)
    sent = seed_delivery(rt)
    queued = seed_delivery(rt, status=DeliveryStatus.QUEUED)
    with transaction(rt.sessions) as s:
        s.execute(
            update(Delivery)
            .where(Delivery.id == sent.delivery_id)
            .values(last_reply=f"250 2.0.0 OK for <{DANA.upper()}>")
        )
        s.add(
            DeliveryEvent(
                delivery_id=sent.delivery_id,
                contact_id=sent.contact_id,
                kind="bounced",
                detail=f"550 5.1.1 <{DANA}>: no such user",
                raw=f"To: {DANA}\r\n\r\nbounce",
                at=FIXED_NOW,
            )
        )
        suppressions.suppress(
            s, DANA, reason=SuppressionReason.UNSUBSCRIBED, source="one-click", now=FIXED_NOW, scope="acme"
        )
    with transaction(rt.sessions) as s:
        result = erasure.erase_contact(s, DANA, actor="dpo", now=FIXED_NOW)
    assert (result.contact_id, result.deliveries, result.events) == (sent.contact_id, 2, 1)
    with transaction(rt.sessions) as s:
        contact = s.get(Contact, sent.contact_id)
        assert contact is not None
        assert (contact.email, contact.first_name, contact.last_name, contact.outlet) == (None, None, None, None)
        assert contact.attributes == {} and contact.erased_at == FIXED_NOW
        assert contact.email_hash != email_hash(DANA)
        for table in (ContactBeat, ContactTag, ListMember):
            assert s.scalar(select(func.count()).select_from(table)) == 0
        deliveries = {d.id: d for d in s.scalars(select(Delivery))}
        assert all(d.email is None for d in deliveries.values())
        assert DANA not in (deliveries[sent.delivery_id].last_reply or "").lower()
        assert deliveries[queued.delivery_id].status == "suppressed"
        event = s.scalars(select(DeliveryEvent)).one()
        assert event.raw is None and DANA not in (event.detail or "")
        sups = {(x.scope, x.reason, x.email, x.email_hash) for x in s.scalars(select(Suppression))}
        assert sups == {
            (GLOBAL_SCOPE, "erased", None, email_hash(DANA)),
            ("acme", "unsubscribed", None, email_hash(DANA)),
        }
        assert suppression_store.is_suppressed(s, DANA)
        everything = " ".join(
            str(v)
            for t in (Contact, Delivery, DeliveryEvent, Suppression)
            for row in s.execute(select(t.__table__)).all()
            for v in row
        )
    assert DANA not in everything.lower()


def test_erase_scrubs_the_address_from_suppression_sources(rt: Runtime, tmp_path: Path) -> None:
    """A hard-bounce suppression quoting the address ("550 5.1.1 <hb@...>") and its log keep no trace after erase."""
    hb = "hb@example.com"
    import_rows(rt, tmp_path, f"{hb},Hal,Berg,Wire,,\n")
    with transaction(rt.sessions) as s:
        suppressions.suppress(
            s,
            hb,
            reason=SuppressionReason.HARD_BOUNCE,
            source=f"SMTP 550 5.1.1 <{hb.upper()}> user unknown",
            now=FIXED_NOW,
            actor="dpo",
            note=f"bounced; {hb} confirmed gone on the phone",
        )
    with transaction(rt.sessions) as s:
        erasure.erase_contact(s, hb, actor="dpo", now=FIXED_NOW)
    with transaction(rt.sessions) as s:
        assert s.scalars(select(Suppression.source)).one().startswith("SMTP 550 5.1.1 <[erased]> user unknown")
        assert (s.scalar(select(func.count()).select_from(SuppressionLog)) or 0) >= 2
        everything = " ".join(
            str(v)
            for t in (Contact, Suppression, SuppressionLog)
            for row in s.execute(select(t.__table__)).all()
            for v in row
        )
    assert hb not in everything.lower()


def test_erase_scrubs_the_ascii_form_of_an_idn_address(rt: Runtime, tmp_path: Path) -> None:
    """A relay quotes an IDN address in its IDNA form (xn--): erase cuts that form out of the source too."""
    idn = "jose@bücher.example.com"
    import_rows(rt, tmp_path, f"{idn},José,Peña,Radio,,\n")
    with transaction(rt.sessions) as s:
        suppressions.suppress(
            s,
            idn,
            reason=SuppressionReason.HARD_BOUNCE,
            source="SMTP 550 5.1.1 <jose@xn--bcher-kva.example.com>: no such user",
            now=FIXED_NOW,
        )
        erasure.erase_contact(s, idn, actor="dpo", now=FIXED_NOW)
    with transaction(rt.sessions) as s:
        source = s.scalars(select(Suppression.source)).one()
    assert source == "SMTP 550 5.1.1 <[erased]>: no such user"


def test_sqlite_connections_turn_secure_delete_on(tmp_path: Path) -> None:
    """Every SQLite connection sets secure_delete itself, also where the library's compiled default is off."""
    engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'sd.db'}"))

    def library_default_off(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA secure_delete=OFF")  # as in builds without SQLITE_SECURE_DELETE

    event.listen(engine, "connect", library_default_off, insert=True)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_erasure_leaves_no_bytes_in_the_file(tmp_path: Path) -> None:
    """SQLite runs with secure_delete: after erase and a checkpoint the address is nowhere in the database file."""
    marker = "erase-me-7f3a9c@example.org"
    database = tmp_path / "own.db"  # its own file: the checkpoint below must not race the suite's engines
    own = Runtime.open(Settings(database=DatabaseSettings(url=f"sqlite:///{database}")), check_schema=False)
    try:
        db.upgrade(own.engine)
        import_rows(own, tmp_path, f"{marker},Era,Sure,Harbor Ledger,politics,staff\n")
        with transaction(own.sessions) as s:
            erasure.erase_contact(s, marker, actor="dpo", now=FIXED_NOW)
    finally:
        own.close()
    with closing(sqlite3.connect(database)) as raw:
        assert raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # 0: not blocked
    data = database.read_bytes()
    at = data.find(marker.encode())
    assert at < 0, data[max(0, at - 200) : at + 100]


def test_reimport_after_erase_stays_suppressed(rt: Runtime, tmp_path: Path) -> None:
    """Re-importing an erased address does not crash on the unique hash and the new contact is suppressed."""
    import_rows(rt, tmp_path, DANA_ROW)
    with transaction(rt.sessions) as s:
        erasure.erase_contact(s, DANA, actor="dpo", now=FIXED_NOW)
    result = import_rows(rt, tmp_path, DANA_ROW)
    assert (result.accepted, result.rejected) == (1, [])
    with transaction(rt.sessions) as s:
        assert suppression_store.is_suppressed(s, DANA)
        assert s.scalar(select(Suppression.reason).where(Suppression.scope == GLOBAL_SCOPE)) == "erased"


def test_erase_turns_an_existing_global_suppression_into_erased(rt: Runtime) -> None:
    """An address already unsubscribed everywhere keeps one global suppression, now with reason erased, and the change is logged."""
    seed_delivery(rt)
    with transaction(rt.sessions) as s:
        suppressions.suppress(s, DANA, reason=SuppressionReason.UNSUBSCRIBED, source="page", now=FIXED_NOW)
        erasure.erase_contact(s, DANA, actor="dpo", now=FIXED_NOW)
    with transaction(rt.sessions) as s:
        assert s.execute(select(Suppression.scope, Suppression.reason)).all() == [(GLOBAL_SCOPE, "erased")]
        assert s.execute(select(SuppressionLog.action, SuppressionLog.actor)).all() == [("erased", "dpo")]


def test_erase_of_an_unknown_address_is_not_found(rt: Runtime) -> None:
    """Erasing an address nothing is stored about says so instead of inventing a record."""
    with transaction(rt.sessions) as s, pytest.raises(NotFoundError):
        erasure.erase_contact(s, "nobody@example.org", actor="dpo", now=FIXED_NOW)


def test_mask_email() -> None:
    """The page shows the first letter of the local part and the whole domain."""
    assert unsubscribes.mask_email("dana@harborledger.example.com") == "d***@harborledger.example.com"
    assert unsubscribes.mask_email(None) == "your address"


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_add_list_remove_export(rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suppressions commands: add, list with filters and --json, remove with a reason, export."""
    monkeypatch.setenv("MAILER_USER", "pat")
    seed_delivery(rt)
    assert cli(rt, "suppressions", "add", DANA, "--note", "called the desk")[0] == 0
    assert cli(rt, "suppressions", "add", "omar@wire.example.net", "--scope", "acme", "--reason", "complaint")[0] == 0
    code, output = cli(rt, "suppressions", "list", "--json")
    assert code == 0
    listed = json.loads(output)
    assert {(r["email"], r["scope"], r["reason"]) for r in listed} == {
        (DANA, GLOBAL_SCOPE, "manual"),
        ("omar@wire.example.net", "acme", "complaint"),
    }
    code, output = cli(rt, "suppressions", "list", "--json", "--scope", "acme", "--reason", "complaint")
    assert [r["email"] for r in json.loads(output)] == ["omar@wire.example.net"]
    code, output = cli(rt, "suppressions", "list", "--json", "--email", "DANA@harborledger.example.com")
    assert [r["email"] for r in json.loads(output)] == [DANA]
    assert cli(rt, "suppressions", "list", "--reason", "bogus")[0] == 2
    # Removing needs a reason (a missing required option is a usage error) and logs the actor.
    assert cli(rt, "suppressions", "remove", DANA)[0] == 2
    assert cli(rt, "suppressions", "remove", DANA, "--reason", "opted back in", "--as", "sam")[0] == 0
    with transaction(rt.sessions) as s:
        assert not suppression_store.is_suppressed(s, DANA)
        assert s.execute(select(SuppressionLog.action, SuppressionLog.actor)).all()[-1] == ("removed", "sam")
    out_file = tmp_path / "sup.csv"
    assert cli(rt, "suppressions", "export", "-o", str(out_file))[0] == 0
    assert out_file.read_text(encoding="utf-8").splitlines()[1].startswith("omar@wire.example.net,")


def test_cli_remove_of_missing_suppression_fails(rt: Runtime) -> None:
    """Lifting what is not there is reported, not silently ignored."""
    with pytest.raises(NotFoundError):
        cli(rt, "suppressions", "remove", DANA, "--reason", "typo")


def test_cli_contacts_erase(rt: Runtime, tmp_path: Path) -> None:
    """`mailer contacts erase EMAIL --as USER` erases and reports; the address stays suppressed."""
    import_rows(rt, tmp_path, DANA_ROW)
    code, output = cli(rt, "contacts", "erase", DANA, "--as", "dpo", "--json")
    assert code == 0
    assert json.loads(output)["contact_erased"] is True
    code, output = cli(rt, "suppressions", "list", "--json", "--email", DANA)
    assert [(r["email"], r["reason"]) for r in json.loads(output)] == [(None, "erased")]
    assert DANA not in output


def test_unsubscribed_page_for_an_erased_contact(rt: Runtime) -> None:
    """An old link of an erased contact still resolves, shows no address, and reports suppressed everywhere."""
    seeded = seed_delivery(rt)
    with transaction(rt.sessions) as s:
        erasure.erase_contact(s, DANA, actor="dpo", now=FIXED_NOW)
        page = unsubscribes.unsubscribe_page(s, seeded.delivery_id)
    assert page is not None
    assert (page.masked_email, page.everywhere) == ("your address", True)
