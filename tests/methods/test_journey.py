"""One journey through the command line and the REST API: the register, a method written by an
analyst and approved by QA, a stored calibration, an analysis under the method, the same record
entered in two lots (one by each shell), and the same answers from both shells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from method_helpers import METHOD, METHOD_YAML, MODEL, SERIAL, stored_calibration_args

from exocheck.auth import Accounts
from exocheck.store import Store
from exocheck.web import Settings, create_app

SPEC = f"""\
schema: exocheck.spec/1
name: beads-method
version: 1
method: {METHOD}@1
criteria:
  - {{name: Size mode, kind: range, quantity: size.mode_nm, min: 50, max: 200}}
  - {{name: Concentration, kind: range, quantity: concentration.particles_per_ml,
     min: 1.0e+8, max: 1.0e+11}}
"""


def _pw(name: str) -> str:
    return f"{name}-journey-pw"


@pytest.fixture
def shells(tmp_path):
    """A store with users (adam admin, ana analyst, quinn QA) and the web app on it."""
    db = tmp_path / "qc.db"
    with Store.open(f"sqlite:///{db}") as store:
        accounts = Accounts(store)
        for name, role in (("adam", "admin"), ("ana", "analyst"), ("quinn", "qa")):
            accounts.add_user(name, role=role, password=_pw(name), by="setup")
    settings = Settings(database_url=f"sqlite:///{db}", data_dir=tmp_path / "data")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield db, client


def _login(client: TestClient, name: str) -> dict[str, str]:
    answer = client.post("/api/v1/login", json={"username": name, "password": _pw(name)})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_cli_and_rest_give_the_same_answers(exo, shells, beads, tmp_path):
    db, client = shells

    def cli(name: str, *args):
        done = exo(*args, "--db", db, "--user", name, "--password-stdin", stdin=_pw(name) + "\n")
        assert done.code == 0, done.stderr
        return done

    def cli_json(*args):
        done = exo(*args, "--db", db, "--json")
        assert done.code == 0, done.stderr
        return json.loads(done.stdout)

    ana, quinn = _login(client, "ana"), _login(client, "quinn")
    assert client.get("/api/v1/methods").status_code == 401
    # the register is QA's; an analyst may not add to it
    refused = client.post("/api/v1/instruments", json={"serial": "X", "model": MODEL}, headers=ana)
    assert refused.status_code == 403 and "instrument register" in refused.json()["detail"]
    cli("quinn", "instrument", "add", SERIAL, "--model", MODEL, "--pixel-size-um", 0.166)
    # the analyst writes the method through the API; QA approves it with the password again
    added = client.post("/api/v1/methods", json={"yaml": METHOD_YAML}, headers=ana)
    assert added.status_code == 201 and added.json()["status"] == "draft", added.text
    ref = f"{METHOD}@1"
    mine = client.post(
        f"/api/v1/methods/{ref}/approval", json={"password": _pw("ana")}, headers=ana
    )
    assert mine.status_code == 403
    wrong = client.post(f"/api/v1/methods/{ref}/approval", json={"password": "no"}, headers=quinn)
    assert wrong.status_code == 401
    assert client.get("/api/v1/methods/other@1", headers=ana).status_code == 404
    ok = client.post(
        f"/api/v1/methods/{ref}/approval", json={"password": _pw("quinn")}, headers=quinn
    )
    assert ok.status_code == 201 and ok.json()["approved_by"] == "quinn", ok.text
    # calibration and analysis on the command line
    calibration = stored_calibration_args(beads, db)
    calibration = calibration[: calibration.index("--db")]
    cli("ana", *calibration)
    out = tmp_path / "result"
    ran = exo("analyze", beads, "--method", METHOD, "--instrument", SERIAL, "--db", db,
              "--out", out)  # fmt: skip
    assert ran.code == 0, ran.stderr
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    cli("quinn", "product", "add", "BEADS")
    cli("quinn", "spec", "add", spec, "--product", "BEADS")
    cli("ana", "lot", "add", "L-CLI", "--product", "BEADS")
    reuse = "one analysis entered by both shells"
    cli("ana", "measurement", "add", "L-CLI", out / "result.json", "--method", ref,
        "--allow-reuse", reuse)  # fmt: skip
    made = client.post("/api/v1/lots", json={"lot": "L-API", "product": "BEADS"}, headers=ana)
    assert made.status_code == 201, made.text
    with (out / "result.json").open("rb") as handle:
        entered = client.post(
            "/api/v1/lots/L-API/measurements",
            files={"file": ("result.json", handle, "application/json")},
            data={"method": ref, "allow_reuse": reuse},
            headers=ana,
        )
    assert entered.status_code == 201, entered.text
    assert entered.json()["method"] == ref
    # the same answers from both shells
    by_cli = cli_json("release", "L-CLI")
    by_rest = client.get("/api/v1/lots/L-API/release", headers=ana).json()
    assert by_cli["decision"] == "conforms" and "caveats" not in by_cli
    assert {k: v for k, v in by_cli.items() if k != "lot"} == {
        k: v for k, v in by_rest.items() if k != "lot"
    }
    for command, path in (
        (("instrument", "list"), "/api/v1/instruments"),
        (("instrument", "show", SERIAL), f"/api/v1/instruments/{SERIAL}"),
        (("method", "list"), "/api/v1/methods"),
        (("method", "list", "--approved"), "/api/v1/methods?approved=true"),
        (("method", "show", ref), f"/api/v1/methods/{ref}"),
        (("calibration", "list"), "/api/v1/calibrations"),
        (("calibration", "show", "1"), "/api/v1/calibrations/1"),
    ):
        answer = client.get(path, headers=ana)
        assert answer.status_code == 200, (path, answer.text)
        assert cli_json(*command) == answer.json(), path
    shown = client.get(f"/api/v1/methods/{ref}", headers=ana).json()
    limit = shown["detection_limit"]
    assert limit["calibration"] == 1 and limit["refractive_index"] == 1.39
    assert 20 < limit["detection_limit_nm"] < 200  # EVs of index 1.39, calibrated on PS beads
    lot = client.get("/api/v1/lots/L-API", headers=ana).json()
    assert lot["status"] == "in review"
    with Store.open(f"sqlite:///{db}") as store:
        record = store.lot_data("L-API").nta
    assert record.settings["method"]["instrument_serial"] == SERIAL
    assert record.settings["method"]["calibration_id"] == 1
    assert Path(out / "result.json").exists()


def test_rest_video_upload_under_a_method_queues_the_method(exo, shells, beads, method_file):
    """A video uploaded with ``method`` and ``instrument`` is queued with the method's settings,
    calibration and stamp; a frame rate against the file is refused at once (422) unless
    ``override`` gives the reason; a draft or unknown method is refused before the upload is
    read."""
    db, client = shells
    for name, args in (
        ("quinn", ("instrument", "add", SERIAL, "--model", MODEL)),
        ("ana", ("method", "add", method_file)),
        ("quinn", ("method", "approve", f"{METHOD}@1")),
        ("quinn", ("product", "add", "BEADS")),
        ("ana", ("lot", "add", "L-1", "--product", "BEADS")),
    ):
        done = exo(*args, "--db", db, "--user", name, "--password-stdin", stdin=_pw(name) + "\n")
        assert done.code == 0, done.stderr
    calibration = stored_calibration_args(beads, db)
    calibration = calibration[: calibration.index("--by")]
    done = exo(*calibration, "--user", "ana", "--password-stdin", stdin=_pw("ana") + "\n")
    assert done.code == 0, done.stderr
    queued = []
    services = client.app.state.services
    services.analyses.submit = lambda store, spec, checksum, *, lot, by: queued.append(spec) or 41
    ana = _login(client, "ana")

    def upload(**fields):
        with beads.open("rb") as handle:
            return client.post(
                "/api/v1/lots/L-1/measurements",
                files={"file": ("beads.tif", handle, "image/tiff")},
                data={"method": METHOD, "instrument": SERIAL, **fields},
                headers=ana,
            )

    refused = upload(fps="25")
    assert refused.status_code == 422
    assert "--fps 25 contradicts method nta-ev-scatter@1" in refused.json()["detail"]
    assert upload(method="nta-ev-scatter@7").status_code == 409  # unknown version
    assert upload(pixel_size_um="166").status_code == 422  # unit sense, before reading
    assert queued == []
    answer = upload()
    assert answer.status_code == 202 and answer.json()["job"] == 41, answer.text
    (spec,) = queued
    assert spec.stamp["name"] == METHOD and spec.stamp["calibration_id"] == 1
    assert spec.stored_calibration.calibration_id == 1
    assert spec.settings.sizing.n_bootstrap == 3 and spec.conditions.refractive_index == 1.39
