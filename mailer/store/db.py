"""Engine and session setup, SQLite pragmas, schema migrations (Alembic).

SQLite runs in WAL mode with a busy timeout, foreign keys and ``secure_delete`` on. Every SQLite
transaction starts with ``BEGIN IMMEDIATE`` so that a writer takes the lock up front
and waits (busy timeout) instead of failing half way when it upgrades a read lock;
read-only work may pass ``execution_options(sqlite_deferred=True)``.

A writer that must not wait long for the lock passes ``execution_options(sqlite_lock_poll=True)``:
it then asks for the lock every millisecond or two until the busy timeout, instead of
through SQLite's busy handler, whose sleeps grow to 100 ms (so a writer that arrives
just after another took the lock waits up to 100 ms past its release). The web process's
unsubscribes do (:mod:`mailer.web.oneclick`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailer.config import DatabaseSettings
from mailer.domain.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(settings: DatabaseSettings) -> Engine:
    """Create the engine for ``settings.url``; raises :class:`StoreError` on a bad URL."""
    url = settings.url
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": settings.busy_timeout_ms / 1000})
            _sqlite_setup(engine, settings.busy_timeout_ms)
            if engine.url.database and engine.url.database != ":memory:":
                Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            # jit=off: PostgreSQL's JIT compiles a statement whose estimated cost is high,
            # and the correlated suppression tests of planning and claiming estimate high
            # (each subplan counted per row) while running in microseconds: a 20,000-contact
            # planning step spent 3.2 s of its 5.8 s compiling (bench/README.md)
            engine = create_engine(
                url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"options": "-c jit=off"}
            )
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"database.url: cannot use {settings.url!r}: {exc}") from exc
    return engine


def _sqlite_setup(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL survives a killed process; only power loss can drop the last commits.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # Deleted and overwritten content is zeroed on disk, so an erased address does
        # not linger in free pages of the file (issue 12; right to erasure).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("sqlite_deferred", False):
            conn.exec_driver_sql("BEGIN")
        elif options.get("sqlite_lock_poll", False):
            _begin_polling(conn, busy_timeout_ms)
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


#: Pauses between two requests for the lock in :func:`_begin_polling`, in seconds.
LOCK_POLL_FIRST, LOCK_POLL_MAX = 0.0005, 0.002


def _begin_polling(conn: Any, busy_timeout_ms: int) -> None:
    """``BEGIN IMMEDIATE``, asking again every 0.5–2 ms until ``busy_timeout_ms`` has passed."""
    raw = conn.connection.dbapi_connection
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = LOCK_POLL_FIRST
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    break  # not the lock: raised below as any database error
                time.sleep(pause)
                pause = min(LOCK_POLL_MAX, pause * 2)
                continue
            return
        # Out of time (or another error): one last try that fails as any other BEGIN does.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (objects are handed to callers)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    Database errors surface as :class:`StoreError` with one readable line.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise StoreError(f"database error: {_short(exc)}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _short(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Create or upgrade the schema to ``revision``; returns the revision now in place."""
    try:
        command.upgrade(_alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(f"cannot upgrade the database: {_short(exc)}") from exc
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect().execution_options(sqlite_deferred=True) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    return script.get_current_head()


def require_current(engine: Engine) -> None:
    """Raise :class:`StoreError` unless the schema is at the newest migration."""
    try:
        have = current_revision(engine)
    except OperationalError as exc:
        raise StoreError(f"cannot open the database: {_short(exc)}") from exc
    if have != head_revision():
        raise StoreError("the database schema is not current: run `mailer db upgrade`")
