"""Helpers of the web service tests: users, logins, records (imported by name: web_helpers)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, lognormal_measurement

from exocheck.auth import Accounts
from exocheck.store import Store

USERS = {"ana": "analyst", "ben": "analyst", "rita": "reviewer", "quinn": "qa", "adam": "admin"}
PRODUCT = "EXO-1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def password(name: str) -> str:
    return f"{name}-secret-pw"


def stock(url: str, tmp_path: Path) -> None:
    """Product EXO-1 (2e10 particles per 1-mL vial), the test specification, five users."""
    with Store.open(url) as store:
        store.add_product(PRODUCT, particles_per_unit=2e10, fill_volume_ml=1.0, by="qa-setup")
        spec = tmp_path / "spec.yaml"
        spec.write_text(SPEC_YAML)
        store.add_specification(spec, product=PRODUCT, by="qa-setup")
        accounts = Accounts(store)
        for name, role in USERS.items():
            accounts.add_user(
                name,
                role=role,
                password=password(name),
                by="admin-setup",
                printed_name=f"{name.title()} Example",
            )


def api_login(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/login", json={"username": name, "password": password(name)})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def page_login(client: TestClient, name: str) -> str:
    """Log ``name`` in through the login form; returns the session's CSRF token."""
    form = client.get("/login")
    token = CSRF.search(form.text).group(1)
    response = client.post(
        "/login",
        data={"username": name, "password": password(name), "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return CSRF.search(client.get("/").text).group(1)


def result_json(tmp_path: Path, name: str = "result.json", **kwargs) -> Path:
    """An exocheck measurement record on disk (log-normal, conforming by default)."""
    path = tmp_path / name
    path.write_text(lognormal_measurement(**kwargs).to_json())
    return path


def complete_lot(
    client: TestClient, headers: dict, store_url: str, lot: str, tmp_path: Path
) -> None:
    """Create ``lot`` through the API and give it every result the specification asks for
    (NTA through the API; protein, markers and safety through the store as ``ana``)."""
    assert (
        client.post(
            "/api/v1/lots", json={"lot": lot, "product": PRODUCT}, headers=headers
        ).status_code
        == 201
    )
    path = result_json(tmp_path, f"{lot}.json", sample=lot)
    with open(path, "rb") as fh:
        response = client.post(
            f"/api/v1/lots/{lot}/measurements",
            headers=headers,
            files={"file": (path.name, fh, "application/json")},
        )
    assert response.status_code == 201, response.text
    with Store.open(store_url) as store:
        store.add_protein(lot, 5.0, by="ana")
        store.add_markers(
            lot,
            {
                "CD9": "present",
                "CD63": "present",
                "CD81": "present",
                "TSG101": "present",
                "calnexin": "absent",
            },
            by="ana",
        )
        store.add_safety(lot, {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by="ana")
