"""Fixtures of the signing tests: a store with a released lot, a keyring, an issued certificate
(made once per module: rendering and signing a PDF takes seconds), and the store tests'
SQLite/PostgreSQL ``db_url``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from exocheck.certify import Keyring, issue_certificate
from exocheck.store import Store

STORE_TESTS = Path(__file__).parents[1] / "store"
sys.path.insert(0, str(Path(__file__).parent))
from signing_factories import PUBLIC_URL, stock  # noqa: E402

_spec = importlib.util.spec_from_file_location("store_conftest", STORE_TESTS / "conftest.py")
_store_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_store_conftest)
db_url = _store_conftest.db_url  # SQLite, and PostgreSQL where EXOCHECK_TEST_POSTGRES_URL is set


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    """``(folder, store, keyring, certificate)``: one released lot and its signed certificate."""
    folder = tmp_path_factory.mktemp("issued")
    with Store.open(f"sqlite:///{folder / 'qc.db'}") as store:
        stock(store, folder)
        keyring = Keyring(folder / "keys")
        keyring.init("Example Biologics", public_url=PUBLIC_URL)
        certificate = issue_certificate(store, "L-OK", keyring, by="bob")
        (folder / "coa.pdf").write_bytes(certificate.pdf)
        yield folder, store, keyring, certificate
