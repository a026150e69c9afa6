"""Where the store lives and how it is opened: URL resolution, engines, migrations.

The default is an embedded SQLite file in the per-user data directory (platformdirs);
``--db URL`` or ``EXOCHECK_DATABASE_URL`` overrides it. PostgreSQL works through the same code
(``postgresql+psycopg://user:password@host/dbname``). A plain path is taken as a SQLite file.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from exocheck.errors import StoreError

ENV_VAR = "EXOCHECK_DATABASE_URL"


def default_database_url() -> str:
    """The embedded SQLite database in the per-user data directory."""
    folder = Path(platformdirs.user_data_dir("exocheck", appauthor=False))
    return f"sqlite:///{folder / 'exocheck.db'}"


def resolve_url(url: str | os.PathLike[str] | None = None) -> str:
    """``url`` if given, else ``$EXOCHECK_DATABASE_URL``, else the per-user SQLite file."""
    url = str(url) if url else os.environ.get(ENV_VAR) or default_database_url()
    if "://" not in url:  # a plain path: SQLite file
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def redact(url: str) -> str:
    """The URL with any password hidden (for messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and its folder created."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ImportError, ArgumentError) as exc:
        raise StoreError(f"cannot use database {redact(url)}: {exc}") from None


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases and in-memory SQLite)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def check_exists(url: str) -> None:
    """Refuse a SQLite database file that does not exist yet.

    Opening a SQLite URL creates the file: a typing mistake in ``--db`` would silently start a new,
    empty database and every later command would report unknown lots. New databases are made on
    purpose (``exocheck db init`` or ``create=True``).
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreError(
            f"no database at {path}: create it with 'exocheck db init --db {path}' "
            "(or add --create), or check the path"
        )


def check_initialised(engine: Engine) -> None:
    """Refuse a database that exists but holds no exocheck schema (not made by exocheck)."""
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        first = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise StoreError(f"cannot open database {redact(str(engine.url))}: {first}") from None
    if current is None:
        raise StoreError(
            f"database {redact(str(engine.url))} holds no exocheck store: create one with "
            "'exocheck db init' (or add --create)"
        )


def alembic_config() -> Config:
    """An Alembic configuration pointing at the migrations inside the installed package."""
    config = Config()
    config.set_main_option("script_location", str(files("exocheck.store") / "migrations"))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (one transaction)."""
    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.begin() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            if current == head:
                return
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        first = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise StoreError(f"cannot open database {redact(str(engine.url))}: {first}") from None
