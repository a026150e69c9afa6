"""A server killed (SIGKILL) in the middle of a signature leaves, after restart, either the whole
signature with its release and audit events or none of them; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import threading
import uuid

import httpx2 as httpx
import pytest
from qc_factories import fill_lot
from sqlalchemy import create_engine, text
from web_helpers import password, stock
from web_server import Server

from exocheck.auth import Signing
from exocheck.store import Store

PG_ENV = "EXOCHECK_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_db(request, tmp_path, stocked_db):
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


def _state(url: str) -> tuple[list[str], list[str], bool]:
    with Store.open(url) as store:
        meanings = [s["meaning"] for s in Signing(store).lot_state("L-1")["signatures"]]
        actions = [e["action"] for e in store.history("L-1")]
        released = store.lot_info("L-1")["approved_by"] is not None
    return meanings, actions, released


def _token(server: Server, name: str) -> str:
    response = httpx.post(
        f"{server.base}/api/v1/login",
        json={"username": name, "password": password(name)},
        timeout=30,
    )
    return response.json()["token"]


def test_signature_is_all_or_nothing_under_sigkill(crash_db, tmp_path):
    with Store.open(crash_db) as store:
        fill_lot(store, "L-1", by="ana")
        Signing(store).sign(
            "L-1", user="rita", password=password("rita"), meaning="reviewed", reason="data checked"
        )
    body = {"meaning": "approved", "reason": "release", "password": password("quinn")}

    # killed after the signature, its release and audit events are written, before the commit
    server = Server(crash_db, tmp_path / "data", EXOCHECK_FAULT_PAUSE_SIGNATURE_S="60")
    try:
        token = _token(server, "quinn")
        outcome: list[object] = []

        def post() -> None:
            try:
                outcome.append(
                    httpx.post(
                        f"{server.base}/api/v1/lots/L-1/signatures",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=90,
                    )
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=post)
        thread.start()
        server.wait_for_line("signature of lot L-1 written")
        server.kill()
        thread.join(timeout=30)
    finally:
        server.kill()
    assert isinstance(outcome[0], httpx.HTTPError)  # the client never got an answer
    meanings, actions, released = _state(crash_db)
    assert meanings == ["reviewed"] and not released
    assert "signature.approved" not in actions and "lot.sign" not in actions

    # restarted: the lot is as before and can be signed; killed right after: all of it stays
    server = Server(crash_db, tmp_path / "data")
    try:
        token = _token(server, "quinn")
        headers = {"Authorization": f"Bearer {token}"}
        lot = httpx.get(f"{server.base}/api/v1/lots/L-1", headers=headers, timeout=30).json()
        assert lot["status"] == "in review"
        signed = httpx.post(
            f"{server.base}/api/v1/lots/L-1/signatures", json=body, headers=headers, timeout=60
        )
        assert signed.status_code == 201
        server.kill()
    finally:
        server.kill()
    meanings, actions, released = _state(crash_db)
    assert meanings == ["reviewed", "approved"] and released
    assert actions[-2:] == ["lot.sign", "signature.approved"]
