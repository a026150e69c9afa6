"""The lot lifecycle through the REST API and the pages: lot numbers refused in one line, a
recall shown on every list, withdrawal by e-signature, and the web's certificate being the very
document ``exocheck coa`` writes."""

from __future__ import annotations

from fastapi.testclient import TestClient
from web_helpers import api_login, complete_lot, page_login, password

from exocheck.certify import Keyring
from exocheck.lots.certificate import certificate
from exocheck.lots.signatures import recall_lot
from exocheck.store import Store
from exocheck.web import Settings, create_app


def _sign(client, headers, lot, meaning, who, **extra):
    return client.post(
        f"/api/v1/lots/{lot}/signatures",
        headers=headers,
        json={"meaning": meaning, "reason": f"{meaning} by {who}", "password": password(who)}
        | extra,
    )


def test_bad_lot_numbers_are_refused_in_one_line(client):
    ana = api_login(client, "ana")
    for number, why in (("WEB/002", "'/'"), ("L" * 65, "at most 64"), ("<b>x</b>", "'<'")):
        response = client.post(
            "/api/v1/lots", json={"lot": number, "product": "EXO-1"}, headers=ana
        )
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert why in detail and "\n" not in detail
    assert client.get("/api/v1/lots", headers=ana).json() == []
    token = page_login(client, "ana")
    page = client.post(
        "/lots",
        data={"lot": "WEB/002", "product": "EXO-1", "csrf_token": token},
        follow_redirects=False,
    )
    assert page.status_code == 422 and "use letters, digits" in page.text


def test_recall_shows_everywhere_and_the_certificate_is_refused(client, db_url, tmp_path):
    ana = api_login(client, "ana")
    complete_lot(client, ana, db_url, "NS-001", tmp_path)
    rita, quinn = api_login(client, "rita"), api_login(client, "quinn")
    assert _sign(client, rita, "NS-001", "reviewed", "rita").status_code == 201
    assert _sign(client, quinn, "NS-001", "approved", "quinn").status_code == 201
    with Store.open(db_url) as store:
        recall_lot(store, "NS-001", user="quinn", password=password("quinn"), reason="OOS")
    rows = client.get("/api/v1/lots", headers=ana).json()
    assert [(r["lot"], r["status"]) for r in rows] == [("NS-001", "recalled")]
    lot = client.get("/api/v1/lots/NS-001", headers=ana).json()
    assert lot["status"] == "recalled" and lot["recall"]["reason"] == "OOS"
    coa = client.get("/api/v1/lots/NS-001/coa.pdf", headers=ana)
    assert coa.status_code == 403 and "recalled" in coa.json()["detail"]
    page_login(client, "ana")
    dashboard = client.get("/").text
    row = dashboard.split('<tr data-lot="NS-001">')[1].split("</tr>")[0]
    assert '<span class="status recalled">recalled</span>' in row
    assert "Recalled <b>1</b>" in dashboard
    recalled = client.get("/", params={"status": "recalled"}).text
    assert '<tr data-lot="NS-001">' in recalled
    assert "Recalled by" in client.get("/lots/NS-001").text


def test_withdrawal_through_the_api(client, db_url, tmp_path):
    ana = api_login(client, "ana")
    complete_lot(client, ana, db_url, "NS-010", tmp_path)
    info = client.get("/api/v1/lots/NS-010", headers=ana).json()
    first = info["measurements"][0]["id"]
    url = f"/api/v1/lots/NS-010/measurements/{first}/withdrawal"
    wrong = client.post(url, headers=ana, json={"reason": "typo", "password": "nope-nope"})
    assert wrong.status_code == 401
    done = client.post(url, headers=ana, json={"reason": "typo", "password": password("ana")})
    assert done.status_code == 201 and done.json()["measurement"] == first
    lot = client.get("/api/v1/lots/NS-010", headers=ana).json()
    assert lot["status"] == "awaiting data" and lot["missing"]  # its NTA no longer counts
    assert lot["measurements"][0]["withdrawn"]["reason"] == "typo"
    page_login(client, "ana")
    assert "<s>" in client.get("/lots/NS-010").text


def test_the_web_certificate_is_the_cli_certificate(db_url, tmp_path):
    """Case 9: with signing keys, the web's CoA of a released lot is the signed certificate,
    byte for byte what ``exocheck coa`` (the same library function) gives; without keys both
    give the same watermarked draft."""
    keys = tmp_path / "keys"
    Keyring(keys).init("Example Biologics", public_url="https://verify.example.org")
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", keys_dir=keys)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        ana = api_login(client, "ana")
        complete_lot(client, ana, db_url, "NS-020", tmp_path)
        draft_web = client.get("/api/v1/lots/NS-020/coa.pdf", headers=ana).content
        with Store.open(db_url) as store:
            draft_cli, _ = certificate(store, "NS-020", by="ana", keyring=Keyring(keys))
        assert draft_cli.kind == "draft" and draft_web == draft_cli.content
        rita, quinn = api_login(client, "rita"), api_login(client, "quinn")
        assert _sign(client, rita, "NS-020", "reviewed", "rita").status_code == 201
        assert _sign(client, quinn, "NS-020", "approved", "quinn").status_code == 201
        signed_web = client.get("/api/v1/lots/NS-020/coa.pdf", headers=ana).content
        with Store.open(db_url) as store:
            signed_cli, _ = certificate(store, "NS-020", by="quinn", keyring=Keyring(keys))
        assert signed_cli.kind == "signed" and signed_cli.reissued
        assert signed_web == signed_cli.content and b"/ByteRange" in signed_web
        # a refused recall (wrong password) changes nothing the certificate says
        wrong = client.post(
            "/api/v1/lots/NS-020/recall",
            headers=quinn,
            json={"reason": "typo", "password": "not-the-password"},
        )
        assert wrong.status_code == 401
        assert client.get("/api/v1/lots/NS-020/coa.pdf", headers=ana).content == signed_web
