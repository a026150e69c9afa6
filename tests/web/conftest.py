"""Fixtures of the web service tests: a fresh store per test with a product, its specification
and one user of each role, and the app built on it (``create_app``, no module-level state)."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import stock

from exocheck.web import Settings, create_app


@pytest.fixture(scope="session")
def stocked_db(tmp_path_factory) -> Path:
    """The stocked SQLite store, made once (Argon2 hashing is slow on purpose)."""
    folder = tmp_path_factory.mktemp("stock")
    stock(f"sqlite:///{folder / 'qc.db'}", folder)
    return folder / "qc.db"


@pytest.fixture
def db_url(stocked_db, tmp_path) -> str:
    """A fresh copy of the stocked store for each test."""
    shutil.copyfile(stocked_db, tmp_path / "qc.db")
    return f"sqlite:///{tmp_path / 'qc.db'}"


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", max_upload_mb=2.0)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


PG_ENV = "EXOCHECK_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def both_db(request, tmp_path, stocked_db):
    """The stocked store on SQLite (a copy) and on PostgreSQL (a fresh schema, stocked); the
    PostgreSQL case needs EXOCHECK_TEST_POSTGRES_URL (skipped without it, an error in CI)."""
    if request.param == "sqlite":
        shutil.copyfile(stocked_db, tmp_path / "qc.db")
        yield f"sqlite:///{tmp_path / 'qc.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{PG_ENV} is not set in CI: .ci/run must start PostgreSQL")
        pytest.skip(f"PostgreSQL tests need a server: set {PG_ENV}=postgresql+psycopg://...")
    schema = f"w_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    try:
        stock(url, tmp_path)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
