"""A labelled-fraction record uploaded to a lot: the lot page marks it as the labelled particles
only, lists the labelled_fraction criterion with its interval, and the release API states it;
the lot's particle count stays its scatter measurement's."""

from __future__ import annotations

import sys
from pathlib import Path

from web_helpers import PRODUCT, api_login, complete_lot, page_login

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, labelled_measurement

from exocheck.store import Store


def test_lot_page_and_api_show_the_labelled_fraction(client, tmp_path, db_url):
    spec = tmp_path / "spec-v2.yaml"
    spec.write_text(
        SPEC_YAML.replace("version: 1", "version: 2")
        + "  - {name: CD63+ vesicles, kind: labelled_fraction, marker: CD63, min_percent: 8}\n"
    )
    with Store.open(db_url) as store:
        store.add_specification(spec, product=PRODUCT, by="qa-setup")
    ana = api_login(client, "ana")
    complete_lot(client, ana, db_url, "L-1", tmp_path)
    record = tmp_path / "labelled.json"
    record.write_text(labelled_measurement().to_json())
    with open(record, "rb") as fh:
        response = client.post(
            "/api/v1/lots/L-1/measurements",
            headers=ana,
            files={"file": (record.name, fh, "application/json")},
        )
    assert response.status_code == 201, response.text
    release = client.get("/api/v1/lots/L-1/release", headers=ana).json()
    criterion = next(c for c in release["criteria"] if c["name"] == "CD63+ vesicles")
    assert criterion["result"] == "fail" and criterion["value"] == 0.064  # 5.6-7.3 % < 8 %
    claim = next(c for c in release["criteria"] if c["name"] == "Particles per vial")
    assert claim["result"] == "pass"  # the scatter measurement's 2e10, not 6.4e8 labelled
    page_login(client, "rita")
    page = client.get("/lots/L-1").text
    assert "labelled fraction (CD63): size and concentration of the labelled particles" in page
    assert "6.4 % (5.6–7.3 %)" in page and "≥ 8 % CD63-labelled" in page
    assert "controls subtracted: label-only 1.20e+08/mL, unstained 3.00e+07/mL" in page
