"""Fixtures of the identity tests: a store with one user of each role, a product, its
specification and a lot (made once; Argon2 hashing is slow on purpose), copied for each test;
the session file in the test's folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from identity_helpers import lognormal_measurement, stock


@pytest.fixture(scope="session")
def stocked_db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("identity-stock")
    stock(f"sqlite:///{folder / 'qc.db'}", folder)
    return folder / "qc.db"


@pytest.fixture
def db(stocked_db, tmp_path) -> str:
    """A fresh copy of the store with users, as a ``--db`` URL."""
    shutil.copyfile(stocked_db, tmp_path / "qc.db")
    return f"sqlite:///{tmp_path / 'qc.db'}"


@pytest.fixture
def plain_db(tmp_path) -> str:
    """A store without users (product, specification, lot W-001)."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    stock(url, tmp_path, users=False)
    return url


@pytest.fixture
def result_file(tmp_path) -> Path:
    """An exocheck measurement record on disk."""
    path = tmp_path / "result.json"
    path.write_text(lognormal_measurement().to_json())
    return path


@pytest.fixture(autouse=True)
def _session_file(tmp_path, monkeypatch) -> Path:
    """Sessions are kept in the test's folder; no identity comes from the environment."""
    path = tmp_path / "config" / "sessions.json"
    monkeypatch.setenv("EXOCHECK_SESSION_FILE", str(path))
    monkeypatch.delenv("EXOCHECK_USER", raising=False)
    monkeypatch.delenv("EXOCHECK_IDLE_TIMEOUT_MIN", raising=False)
    return path
