"""The REST API contract under /api/v1: status codes and JSON shapes as documented."""

from __future__ import annotations

import io
import json

from pypdf import PdfReader
from web_helpers import PRODUCT, api_login, complete_lot, password, result_json

from exocheck.store import Store


def test_login_gives_a_bearer_token_and_refuses_a_wrong_password(client):
    ok = client.post("/api/v1/login", json={"username": "ana", "password": password("ana")})
    assert ok.status_code == 200
    token = ok.json()["token"]
    assert len(token) >= 32
    lots = client.get("/api/v1/lots", headers={"Authorization": f"Bearer {token}"})
    assert lots.status_code == 200 and lots.json() == []
    wrong = client.post("/api/v1/login", json={"username": "ana", "password": "not-it-at-all"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "wrong user name or password"}
    unknown = client.post("/api/v1/login", json={"username": "nobody", "password": "whatever1"})
    assert unknown.status_code == 401 and unknown.json() == wrong.json()


def test_logout_ends_the_session(client):
    headers = api_login(client, "ana")
    assert client.post("/api/v1/logout", headers=headers).status_code == 204
    again = client.get("/api/v1/lots", headers=headers)
    assert again.status_code == 401 and set(again.json()) == {"detail"}


def test_lots_create_list_get(client):
    headers = api_login(client, "ana")
    created = client.post("/api/v1/lots", json={"lot": "L-1", "product": PRODUCT}, headers=headers)
    assert created.status_code == 201
    assert created.json()["lot"] == "L-1" and created.json()["specification"] == "test-release@1"
    listed = client.get("/api/v1/lots", headers=headers).json()
    assert [{k: v for k, v in r.items() if k != "missing"} for r in listed] == [
        {"lot": "L-1", "product": PRODUCT, "status": "awaiting data", "decision": "incomplete"}
    ]
    assert "Size mode" in listed[0]["missing"]  # an empty lot awaits data, listed by name
    one = client.get("/api/v1/lots/L-1", headers=headers)
    assert one.status_code == 200
    assert one.json()["status"] == "awaiting data" and one.json()["signatures"] == []
    assert client.get("/api/v1/lots/NOPE", headers=headers).status_code == 404
    again = client.post("/api/v1/lots", json={"lot": "L-1", "product": PRODUCT}, headers=headers)
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    unknown = client.post("/api/v1/lots", json={"lot": "L-2", "product": "NOPE"}, headers=headers)
    assert unknown.status_code == 404
    bad = client.post("/api/v1/lots", json={"product": PRODUCT}, headers=headers)
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], str)
    assert "\n" not in bad.json()["detail"]


def test_result_upload_is_201_with_the_measurement(client, tmp_path, db_url):
    headers = api_login(client, "ana")
    client.post("/api/v1/lots", json={"lot": "L-1", "product": PRODUCT}, headers=headers)
    path = result_json(tmp_path, sample="L-1", median_nm=120.0)
    with open(path, "rb") as fh:
        response = client.post(
            "/api/v1/lots/L-1/measurements",
            headers=headers,
            files={"file": ("result.json", fh, "application/json")},
        )
    assert response.status_code == 201
    body = response.json()
    assert body["lot"] == "L-1" and body["d50_nm"] == 120.0 and isinstance(body["measurement"], int)
    with Store.open(db_url) as store:
        info = store.lot_info("L-1")
    assert [m["created_by"] for m in info["measurements"]] == ["ana"]
    assert info["attachments"][0]["filename"] == "result.json"


def test_release_is_the_cli_evaluation(client, tmp_path, db_url, capsys, monkeypatch):
    from exocheck.cli.main import run

    headers = api_login(client, "ana")
    complete_lot(client, headers, db_url, "L-1", tmp_path)
    api = client.get("/api/v1/lots/L-1/release", headers=headers)
    assert api.status_code == 200
    monkeypatch.setattr("sys.argv", ["exocheck", "release", "L-1", "--json", "--db", db_url])
    capsys.readouterr()
    run()
    cli = json.loads(capsys.readouterr().out)
    assert api.json() == cli
    assert cli["decision"] == "conforms"
    assert client.get("/api/v1/lots", headers=headers).json()[0]["status"] == "in review"


def test_signatures_contract_and_release(client, tmp_path, db_url):
    ana = api_login(client, "ana")
    complete_lot(client, ana, db_url, "L-1", tmp_path)
    rita, quinn = api_login(client, "rita"), api_login(client, "quinn")
    url = "/api/v1/lots/L-1/signatures"
    early = client.post(
        url,
        headers=quinn,
        json={"meaning": "approved", "reason": "ok", "password": password("quinn")},
    )
    assert early.status_code == 403 and "no review" in early.json()["detail"]
    wrong = client.post(
        url,
        headers=rita,
        json={"meaning": "reviewed", "reason": "checked", "password": "wrong-password"},
    )
    assert wrong.status_code == 401
    role = client.post(
        url,
        headers=ana,
        json={"meaning": "reviewed", "reason": "mine", "password": password("ana")},
    )
    assert role.status_code == 403 and "role analyst" in role.json()["detail"]
    review = client.post(
        url,
        headers=rita,
        json={"meaning": "reviewed", "reason": "checked", "password": password("rita")},
    )
    assert review.status_code == 201
    signed = review.json()
    assert signed["printed_name"] == "Rita Example" and signed["meaning"] == "reviewed"
    assert signed["signed_at"].endswith("+00:00") and len(signed["content_sha256"]) == 64
    approve = client.post(
        url,
        headers=quinn,
        json={"meaning": "approved", "reason": "release", "password": password("quinn")},
    )
    assert approve.status_code == 201
    lot = client.get("/api/v1/lots/L-1", headers=ana).json()
    assert lot["status"] == "released" and lot["decision"] == "conforms"
    assert [s["meaning"] for s in lot["signatures"]] == ["reviewed", "approved"]
    assert lot["signatures"][1]["content_sha256"] == signed["content_sha256"]
    after = client.post(
        url,
        headers=rita,
        json={"meaning": "rejected", "reason": "late", "password": password("rita")},
    )
    assert after.status_code == 403 and "already released" in after.json()["detail"]
    actions = [
        e["action"] for e in client.get("/api/v1/audit", params={"lot": "L-1"}, headers=ana).json()
    ]
    assert actions.count("signature.refused") == 2  # early approval, and after release
    assert "signature.failed" in actions and actions[-3:] == [
        "lot.sign",
        "signature.approved",
        "signature.refused",
    ]


def test_coa_pdf_names_the_lot(client, tmp_path, db_url):
    headers = api_login(client, "ana")
    complete_lot(client, headers, db_url, "LOT-PDF-7", tmp_path)
    response = client.get("/api/v1/lots/LOT-PDF-7/coa.pdf", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert "LOT-PDF-7-CoA.pdf" in response.headers["content-disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "LOT-PDF-7" in text


def test_audit_lists_events_of_a_lot(client, tmp_path, db_url):
    headers = api_login(client, "ana")
    complete_lot(client, headers, db_url, "L-1", tmp_path)
    events = client.get("/api/v1/audit?lot=L-1", headers=headers).json()
    assert [e["action"] for e in events][:2] == ["lot.add", "measurement.add.nta"]
    assert events[0]["actor"] == "ana" and events[0]["after"]["lot"] == "L-1"
    assert client.get("/api/v1/audit?lot=NOPE", headers=headers).status_code == 404
    everything = client.get("/api/v1/audit", headers=headers).json()
    assert any(e["action"] == "user.add" for e in everything)


def test_review_and_release_on_sqlite_and_postgresql(both_db, tmp_path):
    from fastapi.testclient import TestClient

    from exocheck.web import Settings, create_app

    settings = Settings(database_url=both_db, data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        ana = api_login(client, "ana")
        complete_lot(client, ana, both_db, "L-1", tmp_path)
        client.post("/api/v1/lots", json={"lot": "L-2", "product": PRODUCT}, headers=ana)
        url = "/api/v1/lots/L-1/signatures"
        for name, meaning in (("rita", "reviewed"), ("quinn", "approved")):
            response = client.post(
                url,
                headers=api_login(client, name),
                json={"meaning": meaning, "reason": "ok", "password": password(name)},
            )
            assert response.status_code == 201, response.text
        rows = [
            {k: v for k, v in r.items() if k != "missing"}
            for r in client.get("/api/v1/lots", headers=ana).json()
        ]
        assert rows == [
            {"lot": "L-1", "product": PRODUCT, "status": "released", "decision": "conforms"},
            {"lot": "L-2", "product": PRODUCT, "status": "awaiting data", "decision": "incomplete"},
        ]
        events = client.get("/api/v1/audit?lot=L-1", headers=ana).json()
        assert [e["action"] for e in events][-2:] == ["lot.sign", "signature.approved"]
