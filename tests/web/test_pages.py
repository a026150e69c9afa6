"""The pages show what the store holds, and change when it does."""

from __future__ import annotations

import re

from web_helpers import PRODUCT, api_login, complete_lot, page_login


def test_lot_page_criteria_figures_and_control_chart(client, tmp_path, db_url):
    ana = api_login(client, "ana")
    complete_lot(client, ana, db_url, "L-1", tmp_path)
    page_login(client, "rita")
    page = client.get("/lots/L-1").text
    assert page.count('class="pass"') >= 5 and "conforms" in page
    # its particle measurement was made without a method, and the page says so
    assert '<td class="method"><span class="note">no method</span></td>' in page
    sources = re.findall(r'src="(/lots/L-1/figures/(\w+)\.svg\?v=[^"]+)"', page)
    assert {name for _, name in sources} == {"size", "claim"}  # one lot: no control chart yet
    assert "Too few lots of this product for a chart" in page
    for url, _ in sources:
        figure = client.get(url.replace("&amp;", "&"))
        assert figure.status_code == 200 and figure.headers["content-type"] == "image/svg+xml"
        assert "<svg" in figure.text
    assert client.get("/lots/L-1/figures/chart.svg").status_code == 404
    complete_lot(client, ana, db_url, "L-2", tmp_path)
    page = client.get("/lots/L-1").text  # another lot changes L-1's chart, not L-1 itself
    chart = re.search(r'src="(/lots/L-1/figures/chart\.svg\?v=[^"]+)"', page)
    assert chart is not None
    svg = client.get(chart.group(1)).text
    assert "L-1" in svg and "L-2" in svg
    dashboard = client.get("/").text
    assert dashboard.count("/lots/L-") == 2 and 'id="status-in-review"' in dashboard


def test_products_stability_and_docs_pages(client):
    page_login(client, "ana")
    products = client.get("/products").text
    assert PRODUCT in products and "test-release" in products
    assert "No study yet" in client.get("/stability").text
    assert client.get("/stability/none").status_code == 404
    docs = client.get("/docs").text
    assert "/api/v1/lots/{lot}/signatures" in docs
    schema = client.get("/openapi.json").json()
    assert "/api/v1/login" in schema["paths"] and "/lots/{lot}" not in schema["paths"]


def test_stability_study_page_shows_the_shelf_life_plot(client, db_url, tmp_path):
    from test_stability_store import EV_LOTS, EV_PROTOCOL, ev_study_csv

    from exocheck.qc.release import fmt
    from exocheck.store import Store

    with Store.open(db_url) as store:
        for lot in EV_LOTS:
            store.add_lot(lot, PRODUCT, manufactured="2025-01-15", by="ana")
        store.import_study(
            ev_study_csv(tmp_path / "ev.csv"),
            name="EV-storage",
            product=PRODUCT,
            by="ana",
            response_col="concentration_per_ml",
            time_col="day",
            time_unit="day",
            unit="particles/mL",
            protocol=EV_PROTOCOL,
        )
        result = store.shelf_life("EV-storage")
    page_login(client, "quinn")
    listing = client.get("/stability").text
    assert "EV-storage" in listing and "particles/mL" in listing
    page = client.get("/stability/EV-storage").text
    assert 'src="data:image/png;base64,' in page
    shown = "—" if result.shelf_life is None else fmt(result.shelf_life)
    assert f"Shelf life: <b>{shown}</b>" in page


def test_results_form_completes_a_lot(client, tmp_path, db_url):
    from web_helpers import result_json

    ana = api_login(client, "ana")
    client.post("/api/v1/lots", json={"lot": "L-1", "product": PRODUCT}, headers=ana)
    path = result_json(tmp_path, sample="L-1")
    with open(path, "rb") as fh:
        client.post("/api/v1/lots/L-1/measurements", headers=ana, files={"file": ("r.json", fh)})
    csrf = page_login(client, "ana")
    forms = [
        {"kind": "protein", "ug_per_ml": "5", "method": "BCA"},
        {
            "kind": "markers",
            "pairs": "CD9=present, CD63=present\nCD81=present, TSG101=present, calnexin=absent",
        },
        {"kind": "safety", "pairs": "endotoxin_eu_per_ml=0.05, sterility=negative"},
    ]
    assert client.get("/api/v1/lots/L-1", headers=ana).json()["status"] == "awaiting data"
    for form in forms:
        response = client.post(
            "/lots/L-1/results", data=form | {"csrf_token": csrf}, follow_redirects=False
        )
        assert response.status_code == 303, response.text
    lot = client.get("/api/v1/lots/L-1", headers=ana).json()
    assert lot["status"] == "in review" and lot["decision"] == "conforms"
    bad = client.post(
        "/lots/L-1/results", data={"kind": "markers", "pairs": "CD9 present", "csrf_token": csrf}
    )
    assert bad.status_code == 422 and "expected NAME=VALUE" in bad.text
    client.cookies.clear()
    rita = page_login(client, "rita")
    refused = client.post(
        "/lots/L-1/results", data={"kind": "protein", "ug_per_ml": "9", "csrf_token": rita}
    )
    assert refused.status_code == 403 and "role reviewer cannot add measurements" in refused.text


def test_people_page_is_for_administrators(client):
    csrf = page_login(client, "ana")
    assert client.get("/users").status_code == 403
    refused = client.post(
        "/users", data={"name": "eve", "role": "qa", "password": "eve-pw-long", "csrf_token": csrf}
    )
    assert refused.status_code == 403 and "cannot manage users" in refused.text
    client.cookies.clear()
    csrf = page_login(client, "adam")
    assert "ana" in client.get("/users").text
    added = client.post(
        "/users",
        data={
            "name": "eve",
            "role": "qa",
            "printed_name": "Eve E.",
            "password": "eve-pw-long",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    again = client.post(
        "/users", data={"name": "eve", "role": "qa", "password": "eve-pw-long", "csrf_token": csrf}
    )
    assert again.status_code == 409 and "never reused" in again.text
    login = client.post("/api/v1/login", json={"username": "eve", "password": "eve-pw-long"})
    assert login.status_code == 200
    token = {"Authorization": f"Bearer {login.json()['token']}"}
    assert (
        client.post(
            "/users/eve/disable", data={"csrf_token": csrf}, follow_redirects=False
        ).status_code
        == 303
    )
    assert client.get("/api/v1/lots", headers=token).status_code == 401  # sessions ended
    assert (
        client.post(
            "/api/v1/login", json={"username": "eve", "password": "eve-pw-long"}
        ).status_code
        == 423
    )
