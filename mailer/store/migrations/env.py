"""Alembic environment: runs on the engine that :func:`mailer.store.db.upgrade` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from mailer.store.tables import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only reached by a bare `alembic` call
    raise RuntimeError("run migrations with `mailer db upgrade`")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
