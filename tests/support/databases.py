"""Database fixtures: a real database per backend (SQLite file and the local PostgreSQL).

Tests that take ``rt`` run once per backend. PostgreSQL tests skip when no server
answers, except under CI (``CI`` set), where they must run and fail loudly instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text

from mailer.config import DatabaseSettings, Settings
from mailer.runtime import Runtime
from mailer.store import db
from mailer.store.tables import Base
from tests.support.constants import FIXED_NOW, TEMPLATES

PG_DSN = os.environ.get("MAILER_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI and did not answer at {PG_DSN!r}")
        pytest.skip("PostgreSQL not reachable (set CI=1 to make this an error)")
    name = f"mailer_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'mailer.db'}"


_ENGINES: dict[str, Engine] = {}


def _clean(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an upgraded, empty database of each backend."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    if url not in _ENGINES:
        engine = db.make_engine(DatabaseSettings(url=url))
        db.upgrade(engine)
        _ENGINES[url] = engine
    _clean(_ENGINES[url])
    return url


@pytest.fixture
def pg_rt(pg_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on an empty PostgreSQL database only (for tests of several workers)."""
    if pg_url not in _ENGINES:
        engine = db.make_engine(DatabaseSettings(url=pg_url))
        db.upgrade(engine)
        _ENGINES[pg_url] = engine
    _clean(_ENGINES[pg_url])
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        paths={
            "templates_dir": TEMPLATES,
            "capture_maildir": tmp_path / "capture",
            "data_dir": tmp_path / "data",
        },
    )
    runtime = Runtime.open(settings, clock=lambda: FIXED_NOW)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database=DatabaseSettings(url=db_url),
        paths={
            "templates_dir": TEMPLATES,
            "capture_maildir": tmp_path / "capture",
            "data_dir": tmp_path / "data",
        },
    )


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    """A runtime on an empty database of each backend, with a fixed clock."""
    runtime = Runtime.open(settings, clock=lambda: FIXED_NOW)
    try:
        yield runtime
    finally:
        runtime.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for engine in _ENGINES.values():
        engine.dispose()
