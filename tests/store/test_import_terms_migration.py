"""Migration 0019_import_terms: ``contact_terms`` becomes a WITHOUT ROWID table on SQLite, rows kept."""

from __future__ import annotations

import typing
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, text

from mailer.config import DatabaseSettings
from mailer.store import db

ROWS = [("ana", 1), ("harbor", 1), ("ana", 2), ("zoe", 2)]


def _shape(conn: Connection) -> tuple[bool, list[tuple[str, int]], list[str]]:
    sql: str = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'contact_terms'")).scalar_one()
    rows = conn.execute(text("SELECT term, contact_id FROM contact_terms ORDER BY term, contact_id")).all()
    indexes: typing.Sequence[str] = (
        conn.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contact_terms' AND sql IS NOT NULL"
            )
        )
        .scalars()
        .all()
    )
    return "WITHOUT ROWID" in sql, [(str(t), typing.cast(int, c)) for t, c in rows], [str(i) for i in indexes]


def test_upgrade_keeps_every_word_and_downgrade_restores_the_rowid_table(tmp_path: Path) -> None:
    """Words stored before 0019 are all there after it, in a WITHOUT ROWID table with its index; downgrade undoes it."""
    engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'old.db'}"))
    db.upgrade(engine, "0020_suppressions_domain_partial")
    with engine.begin() as conn:
        for cid in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO contacts (id, email, email_hash, attributes, soft_bounce_score, created_at, updated_at) "
                    "VALUES (:id, :email, :hash, '{}', 0, '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
                ),
                {"id": cid, "email": f"c{cid}@example.com", "hash": f"h{cid}"},
            )
        conn.execute(
            text("INSERT INTO contact_terms (term, contact_id) VALUES (:t, :c)"), [{"t": t, "c": c} for t, c in ROWS]
        )
        assert _shape(conn) == (False, sorted(ROWS), ["ix_contact_terms_contact_term"])
    db.upgrade(engine)
    with engine.begin() as conn:
        assert _shape(conn) == (True, sorted(ROWS), ["ix_contact_terms_contact_term"])
        conn.execute(text("DELETE FROM contacts WHERE id = 1"))  # the foreign key still cascades
        assert _shape(conn)[1] == [("ana", 2), ("zoe", 2)]
    command.downgrade(db._alembic_config(engine), "0020_suppressions_domain_partial")
    with engine.begin() as conn:
        assert _shape(conn) == (False, [("ana", 2), ("zoe", 2)], ["ix_contact_terms_contact_term"])
    engine.dispose()
