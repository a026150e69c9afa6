"""Fixtures of the store tests: a fresh store per test, on SQLite and on PostgreSQL.

PostgreSQL runs when ``EXOCHECK_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one and
sets it). Without it the PostgreSQL cases are skipped with the reason, except in CI
(``CI=true``), where a missing server is an error: the suite must not pass without it.
"""

from __future__ import annotations

import os
import uuid

import pytest
from qc_factories import SPEC_YAML
from sqlalchemy import create_engine, text

from exocheck.store import Store

PG_ENV = "EXOCHECK_TEST_POSTGRES_URL"


def _postgres_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{PG_ENV} is not set in CI: .ci/run must start PostgreSQL")
    pytest.skip(f"PostgreSQL tests need a server: set {PG_ENV}=postgresql+psycopg://...")
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A URL to an empty database: a SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qc.db'}"
        return
    base = _postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(db_url):
    with Store.open(db_url) as s:
        yield s


@pytest.fixture
def stocked(store, tmp_path):
    """A store with product EXO-1 (2e10 particles per 1-mL vial) and the test specification."""
    store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML)
    store.add_specification(spec, product="EXO-1", by="qa")
    return store
