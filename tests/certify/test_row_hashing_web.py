"""The web service on records changed past exocheck: the lot (API and page), its certificate
and its signing are refused with 409 and a one-line detail, never a crash."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import fill_lot
from web_helpers import api_login, page_login, password, stock

from exocheck.store import Store
from exocheck.web import Settings, create_app


@pytest.fixture(scope="module")
def stocked(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("webrows")
    stock(f"sqlite:///{folder / 'qc.db'}", folder)
    with Store.open(f"sqlite:///{folder / 'qc.db'}") as store:
        fill_lot(store, "W-1", by="ana")
        fill_lot(store, "W-2", by="ana")
    return folder / "qc.db"


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE measurements SET d50_nm = 80.0 WHERE id = {nta}",
        "UPDATE measurements SET data = '{{\"schema\": ' WHERE id = {nta}",
    ],
)
def test_a_lot_with_altered_records_is_refused_in_one_line(stocked, tmp_path, edit):
    db = tmp_path / "qc.db"
    db.write_bytes(stocked.read_bytes())
    url = f"sqlite:///{db}"
    with Store.open(url) as store, store.engine.begin() as conn:
        nta = conn.execute(
            text(
                "SELECT m.id FROM measurements m JOIN lots l ON l.id = m.lot_id "
                "WHERE l.number = 'W-1' AND m.kind = 'nta'"
            )
        ).scalar()
        conn.execute(text(edit.format(nta=nta)))
    settings = Settings(database_url=url, data_dir=tmp_path / "data")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        headers = api_login(client, "quinn")
        for response in (
            client.get("/api/v1/lots/W-1", headers=headers),
            client.get("/api/v1/lots/W-1/coa.pdf", headers=headers),
            client.post(
                "/api/v1/lots/W-1/signatures",
                headers=headers,
                json={"meaning": "reviewed", "reason": "ok", "password": password("quinn")},
            ),
        ):
            assert response.status_code == 409, response.text
            detail = response.json()["detail"]
            assert "\n" not in detail
            assert detail.startswith("lot W-1: its records fail verification: ")
            assert f"measurement {nta} of lot W-1" in detail
        assert client.get("/api/v1/lots/W-2", headers=headers).status_code == 200
        page_login(client, "quinn")
        page = client.get("/lots/W-1")
        assert page.status_code == 409
        assert f"measurement {nta} of lot W-1" in page.text
        assert client.get("/lots/W-2").status_code == 200
