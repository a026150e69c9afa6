"""Alembic environment: migrations run on the connection exocheck hands over (see
:func:`exocheck.store.session.upgrade`), or on ``sqlalchemy.url`` when run by the alembic
command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from exocheck.store import jobs  # noqa: F401  (the batch_jobs table, in the metadata)
from exocheck.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # pragma: no cover - developer use through the alembic command line
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
