"""Fixtures of the web service tests: a fresh store per test with a product, its specification
and one user of each role, and the app built on it (``create_app``, no module-level state)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

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
