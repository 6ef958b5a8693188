"""Finding delivery rows without the indexes planning no longer maintains (issue 20,
migration 0018_deliveries_lookup): by Message-ID (new step-tagged ones, old fully random
ones, forged ones), by address through its contacts (unsubscribe, bounces, the staff log,
erasure, and an address whose contact was erased)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.orm import Session

from mailer.audience.erasure import erase_contact
from mailer.config import DatabaseSettings
from mailer.domain.states import DeliveryStatus, email_hash
from mailer.runtime import Runtime
from mailer.store import bounces as bounce_store
from mailer.store import db
from mailer.store.db import transaction
from mailer.store.ledger.log import LogFilter, delivery_log
from mailer.store.suppressions import suppress_pending_deliveries, suppress_pending_many
from mailer.store.tables import Delivery, FormerAddress
from tests.support.constants import FIXED_NOW
from tests.support.databases import PG_DSN
from tests.support.engine import Variant, add_contacts, approved_release, deliveries, plan_only

DOMAIN = "mail.example.com"
NEW_SHAPE = re.compile(r"<m\.[0-9a-f]{8}\.[0-9a-f]{32}@mail\.example\.com>")


def _plan(rt: Runtime, release_id: int) -> None:
    plan_only(rt, release_id, scopes=("*",), message_id_domain=DOMAIN)


def _release(rt: Runtime, tmp_path: Path, emails: list[str]) -> int:
    add_contacts(rt, tmp_path, emails)
    release_id = approved_release(rt, [Variant("press-all", "list:press")])
    _plan(rt, release_id)
    return release_id


def _set_status(rt: Runtime, delivery_id: int, status: DeliveryStatus) -> None:
    with transaction(rt.sessions) as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(status=status.value))


def _status(rt: Runtime, delivery_id: int) -> str:
    with rt.sessions() as session:
        return str(session.scalar(select(Delivery.status).where(Delivery.id == delivery_id)))


def test_message_id_finds_its_row_and_a_forged_one_finds_none(rt: Runtime, tmp_path: Path) -> None:
    """Each planned row is found by its Message-ID (with or without <>); the same shape with
    another random part, or another step tag, finds nothing."""
    release_id = _release(rt, tmp_path, ["a@example.com", "b@example.com", "c@example.com"])
    rows = deliveries(rt, release_id)
    with rt.sessions() as session:
        for row in rows.values():
            assert NEW_SHAPE.fullmatch(row.message_id), row.message_id
            found = bounce_store.delivery_by_message_id(session, row.message_id)
            assert found is not None and found.delivery_id == row.id
            bare = bounce_store.delivery_by_message_id(session, row.message_id.strip("<>"))
            assert bare is not None and bare.delivery_id == row.id
        real = rows["b@example.com"].message_id
        tag, random = real[3:11], real[12:44]
        forged_random = real.replace(random, random[::-1])
        forged_tag = real.replace(tag, f"{int(tag, 16) ^ 1:08x}")
        assert bounce_store.delivery_by_message_id(session, forged_random) is None
        assert bounce_store.delivery_by_message_id(session, forged_tag) is None


def test_message_id_of_a_row_planned_before_is_still_found(rt: Runtime, tmp_path: Path) -> None:
    """A row whose Message-ID has the old shape (128 random bits, no step tag) is found by
    it; one hex digit changed finds nothing."""
    release_id = _release(rt, tmp_path, ["a@example.com", "b@example.com"])
    row = deliveries(rt, release_id)["a@example.com"]
    legacy = f"<m.{uuid.uuid4().hex}@{DOMAIN}>"
    with transaction(rt.sessions) as session:
        session.execute(update(Delivery).where(Delivery.id == row.id).values(message_id=legacy))
    with rt.sessions() as session:
        found = bounce_store.delivery_by_message_id(session, legacy)
        assert found is not None and found.delivery_id == row.id
        flipped = legacy[:5] + ("0" if legacy[5] != "0" else "1") + legacy[6:]
        assert bounce_store.delivery_by_message_id(session, flipped) is None


def test_unsubscribe_by_address_suppresses_only_its_pending_rows(rt: Runtime, tmp_path: Path) -> None:
    """Suppressing b's address stops b's queued rows of every release and nobody else's;
    the batch form counts by address."""
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    first = _release(rt, tmp_path, emails)
    second = approved_release(rt, [Variant("press-all", "list:press")])
    _plan(rt, second)
    with transaction(rt.sessions) as session:
        changed = suppress_pending_deliveries(
            session, email_hash("b@example.com"), scope="*", reason="unsubscribed", now=FIXED_NOW
        )
    assert changed == 2
    for release_id in (first, second):
        assert {e: r.status for e, r in deliveries(rt, release_id).items()} == {
            "a@example.com": "queued",
            "b@example.com": "suppressed",
            "c@example.com": "queued",
        }
    with transaction(rt.sessions) as session:
        counts = suppress_pending_many(
            session,
            [email_hash("c@example.com"), email_hash("nobody@example.com")],
            scope="*",
            reason="unsubscribed",
            now=FIXED_NOW,
        )
    assert counts == {email_hash("c@example.com"): 2}
    assert deliveries(rt, first)["a@example.com"].status == "queued"


def test_bounce_and_staff_log_find_an_address_rows(rt: Runtime, tmp_path: Path) -> None:
    """A bounce naming only the address finds its newest handed-over row; the staff log's
    exact-address and domain filters list exactly that address's or domain's rows."""
    emails = ["a@example.com", "b@example.com", "c@other.example"]
    first = _release(rt, tmp_path, emails)
    second = approved_release(rt, [Variant("press-all", "list:press")])
    _plan(rt, second)
    old, new = deliveries(rt, first)["b@example.com"], deliveries(rt, second)["b@example.com"]
    _set_status(rt, old.id, DeliveryStatus.SENT)
    with rt.sessions() as session:
        found = bounce_store.latest_delivery_to(session, email_hash("b@example.com"))
        assert found is not None and found.delivery_id == old.id  # the newer row is still queued
    _set_status(rt, new.id, DeliveryStatus.SENT)
    with rt.sessions() as session:
        found = bounce_store.latest_delivery_to(session, email_hash("b@example.com"))
        assert found is not None and found.delivery_id == new.id
        assert bounce_store.latest_delivery_to(session, email_hash("x@example.com")) is None
        by_address = delivery_log(session, LogFilter(email="B@example.com"))
        assert [r.id for r in by_address.rows] == [old.id, new.id]
        by_domain = delivery_log(session, LogFilter(domain="other.example"))
        assert [r.email for r in by_domain.rows] == ["c@other.example", "c@other.example"]
        one_release = delivery_log(session, LogFilter(domain="example.com", release_id=second))
        assert sorted(r.email or "" for r in one_release.rows) == ["a@example.com", "b@example.com"]


def test_an_erased_address_rows_are_still_found_by_it(rt: Runtime, tmp_path: Path) -> None:
    """b is erased while a worker holds b's row; the row comes back deferred and a later
    suppression of b's address still stops it; b re-imported as a new contact: its new row
    and the old one are both b's (unsubscribe, bounce, a second erasure)."""
    hashed = email_hash("b@example.com")
    first = _release(rt, tmp_path, ["a@example.com", "b@example.com"])
    old = deliveries(rt, first)["b@example.com"]
    _set_status(rt, old.id, DeliveryStatus.SENDING)  # claimed by a worker
    with transaction(rt.sessions) as session:
        erased = erase_contact(session, "b@example.com", actor="dpo", now=FIXED_NOW)
    assert erased.deliveries == 1
    with rt.sessions() as session:
        kept = session.execute(select(FormerAddress.email_hash, FormerAddress.contact_id)).all()
    assert [tuple(r) for r in kept] == [(hashed, old.contact_id)]
    _set_status(rt, old.id, DeliveryStatus.DEFERRED)  # the worker recorded a temporary failure
    with transaction(rt.sessions) as session:
        bounce = bounce_store.latest_delivery_to(session, hashed)
        assert bounce is not None and bounce.delivery_id == old.id
        assert suppress_pending_deliveries(session, hashed, scope="*", reason="unsubscribed", now=FIXED_NOW) == 1
    assert _status(rt, old.id) == "suppressed"

    add_contacts(rt, tmp_path, ["b@example.com"], list_slug="press")  # the same address, a new contact
    second = approved_release(rt, [Variant("press-all", "list:press")])
    _plan(rt, second)
    new = deliveries(rt, second)["b@example.com"]
    assert new.contact_id != old.contact_id and new.status == "suppressed"  # still suppressed (erased)
    _set_status(rt, new.id, DeliveryStatus.QUEUED)
    with transaction(rt.sessions) as session:
        assert suppress_pending_deliveries(session, hashed, scope="*", reason="unsubscribed", now=FIXED_NOW) == 1
        again = erase_contact(session, "b@example.com", actor="dpo", now=FIXED_NOW)
    assert again.deliveries == 2  # the erased contact's row and the new contact's
    assert deliveries(rt, first)["a@example.com"].status == "queued"


# --- the migration ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend (not upgraded)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"mailer_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL not reachable")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_T = "'2026-11-01 00:00:00'"


def test_migration_keeps_old_rows_findable(fresh_url: str) -> None:
    """Upgrading a 0016 database: a row with an old-shape Message-ID is found by it, an
    erased contact's deferred row by its address (its hash kept as a former address); the
    two indexes are gone."""
    engine = db.make_engine(DatabaseSettings(url=fresh_url))
    db.upgrade(engine, "0016_planning_steps")
    legacy = f"<m.{uuid.uuid4().hex}@{DOMAIN}>"
    live, gone = email_hash("a@example.com"), email_hash("b@example.com")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO clients (id, slug, name, from_name, from_address, postal_address, created_at) "
                f"VALUES (1, 'acme', 'Acme', 'Acme', 'press@acme.example.com', '1 Road', {_T})"
            )
        )
        conn.execute(
            text(
                "INSERT INTO releases (id, client_id, title, subject, template, body, extra, status, author, "
                f"created_at, updated_at) VALUES (1, 1, 't', 's', 'press_release', 'b', '{{}}', 'sending', 'Pat', "
                f"{_T}, {_T})"
            )
        )
        for cid, email, hashed in ((1, "'a@example.com'", live), (2, "NULL", "erased-2")):
            conn.execute(
                text(
                    "INSERT INTO contacts (id, email, email_hash, attributes, soft_bounce_score, "
                    "soft_bounce_warnings, created_at, updated_at, sort_name, sort_outlet) "
                    f"VALUES ({cid}, {email}, :h, '{{}}', 0, 0, {_T}, {_T}, '', '')"
                ),
                {"h": hashed},
            )
        for did, cid, email, hashed, status, mid in (
            (1, 1, "'a@example.com'", live, "sent", legacy),
            (2, 2, "NULL", gone, "deferred", f"<m.{uuid.uuid4().hex}@{DOMAIN}>"),
        ):
            conn.execute(
                text(
                    "INSERT INTO deliveries (id, release_id, contact_id, email, email_hash, domain, status, "
                    f"message_id, attempts, in_data, updated_at) VALUES ({did}, 1, {cid}, {email}, :h, "
                    f"'example.com', '{status}', :m, 1, FALSE, {_T})"
                ),
                {"h": hashed, "m": mid},
            )
    db.upgrade(engine)
    try:
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("deliveries")}
        assert "ix_deliveries_email_hash" not in indexes and "ix_deliveries_domain_status_id" not in indexes
        with Session(engine) as session, session.begin():
            kept = session.execute(select(FormerAddress.email_hash, FormerAddress.contact_id)).all()
            assert [tuple(r) for r in kept] == [(gone, 2)]
            found = bounce_store.delivery_by_message_id(session, legacy)
            assert found is not None and found.delivery_id == 1
            assert bounce_store.delivery_by_message_id(session, legacy.replace("<m.", "<m.0")) is None
            bounce = bounce_store.latest_delivery_to(session, gone)
            assert bounce is not None and bounce.delivery_id == 2
            assert suppress_pending_deliveries(session, gone, scope="*", reason="erased", now=FIXED_NOW) == 1
    finally:
        engine.dispose()
