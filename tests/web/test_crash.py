"""A server killed (SIGKILL) in the middle of a signature leaves, after restart, either the whole
signature with its release and audit events or none of them; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import httpx2 as httpx
from qc_factories import fill_lot
from web_helpers import password
from web_server import Server

from exocheck.lots.signatures import Signing
from exocheck.store import Store


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


def test_signature_is_all_or_nothing_under_sigkill(both_db, tmp_path):
    with Store.open(both_db) as store:
        fill_lot(store, "L-1", by="ana")
        Signing(store).sign(
            "L-1", user="rita", password=password("rita"), meaning="reviewed", reason="data checked"
        )
    body = {"meaning": "approved", "reason": "release", "password": password("quinn")}

    # killed after the signature, its release and audit events are written, before the commit
    server = Server(both_db, tmp_path / "data", EXOCHECK_FAULT_PAUSE_SIGNATURE_S="60")
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
    meanings, actions, released = _state(both_db)
    assert meanings == ["reviewed"] and not released
    assert "signature.approved" not in actions and "lot.sign" not in actions

    # restarted: the lot is as before and can be signed; killed right after: all of it stays
    server = Server(both_db, tmp_path / "data")
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
    meanings, actions, released = _state(both_db)
    assert meanings == ["reviewed", "approved"] and released
    assert actions[-2:] == ["lot.sign", "signature.approved"]
