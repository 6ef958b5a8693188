"""The objects one process needs, built once from settings (CLI and web share this)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailer.config import Settings
from mailer.store import db

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Settings plus the database engine and a clock; create with :meth:`open`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock = field(default=utc_now)

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock = utc_now, check_schema: bool = True) -> Runtime:
        """Connect; unless ``check_schema`` is false, require an up-to-date schema."""
        engine = db.make_engine(settings.database)
        if check_schema:
            db.require_current(engine)
        return cls(settings, engine, db.session_factory(engine), clock)

    def close(self) -> None:
        self.engine.dispose()
