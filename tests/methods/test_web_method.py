"""The lab's web workflow under a method, against the command line: two replicate videos of an EV
sample uploaded on the upload page with an approved method and its instrument become one
analysis job and one measurement, with the instrument's stored calibration, the method's stamp
and the very numbers ``exocheck analyze v1 v2 --method`` gives; the lot then conforms as the
command line's lot does. The analysis runs as the service runs it (the batch runner on a local
Dask worker process)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from method_helpers import METHOD, MODEL, SERIAL, stored_calibration_args

from exocheck.auth import Accounts
from exocheck.records import Measurement
from exocheck.simulate import make_params, make_population, simulate
from exocheck.store import Store
from exocheck.web import Settings, create_app

SPEC = f"""\
schema: exocheck.spec/1
name: ev-method
version: 1
method: {METHOD}@1
criteria:
  - {{name: Size D50, kind: range, quantity: size.d50_nm, min: 50, max: 250}}
  - {{name: Concentration, kind: range, quantity: concentration.particles_per_ml,
     min: 1.0e+8, max: 1.0e+11}}
"""
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _pw(name: str) -> str:
    return f"{name}-web-method-pw"


@pytest.fixture(scope="module")
def replicates(tmp_path_factory) -> list[Path]:
    """Two captures of one EV sample (log-normal, median 110 nm, index 1.39, 3e9/mL)."""
    folder = tmp_path_factory.mktemp("ev-replicates")
    videos = []
    for seed in (5, 6):
        params = make_params(
            populations=[
                make_population(
                    name="ev",
                    distribution="lognormal",
                    diameter_nm=110.0,
                    gsd=1.5,
                    refractive_index=1.39,
                    concentration_per_ml=3e9,
                )
            ],
            frames=150,
            width_px=320,
            height_px=240,
            fps=30.0,
            exposure_ms=15.0,
            pixel_size_um=0.166,
            temperature_c=25.0,
            seed=seed,
        )
        simulate(params, folder / f"sim-{seed}")
        target = folder / f"ev-{seed}.tif"
        shutil.copyfile(folder / f"sim-{seed}" / "video.tif", target)
        videos.append(target)
    return videos


@pytest.fixture
def lab(exo, beads, method_file, tmp_path) -> Path:
    """A store with users (ana analyst, quinn QA), instrument NS-0042, method nta-ev-scatter@1
    written by ana and approved by quinn, a stored bead calibration, a product with a
    specification naming the method, and lots L-CLI and L-WEB."""
    db = tmp_path / "qc.db"
    with Store.open(f"sqlite:///{db}") as store:
        accounts = Accounts(store)
        for name, role in (("ana", "analyst"), ("quinn", "qa")):
            accounts.add_user(name, role=role, password=_pw(name), by="setup")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    calibration = stored_calibration_args(beads, db)
    calibration = calibration[: calibration.index("--db")]
    for name, args in (
        ("quinn", ("instrument", "add", SERIAL, "--model", MODEL, "--pixel-size-um", 0.166)),
        ("ana", ("method", "add", method_file)),
        ("quinn", ("method", "approve", f"{METHOD}@1")),
        ("quinn", ("product", "add", "EV")),
        ("quinn", ("spec", "add", spec, "--product", "EV")),
        ("ana", ("lot", "add", "L-CLI", "--product", "EV")),
        ("ana", ("lot", "add", "L-WEB", "--product", "EV")),
        ("ana", calibration),
    ):
        done = exo(*args, "--db", db, "--user", name, "--password-stdin", stdin=_pw(name) + "\n")
        assert done.code == 0, done.stderr
    return db


def _page_login(client: TestClient, name: str) -> str:
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post(
        "/login",
        data={"username": name, "password": _pw(name), "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return CSRF.search(client.get("/").text).group(1)


def _wait_done(client: TestClient, job: int, timeout_s: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get(f"/jobs/{job}", headers={"HX-Request": "true"})
        assert state.status_code == 200
        found = re.search(r'id="job-state"[^>]*>([a-z]+)<', state.text).group(1)
        if found in ("done", "failed"):
            return {"state": found, "html": state.text}
        time.sleep(0.5)
    raise TimeoutError(f"job {job} did not end within {timeout_s} s")


def test_web_upload_under_a_method_gives_the_cli_numbers(exo, lab, replicates, tmp_path):
    db = lab
    # the command line's lot in a copy of the lab's store (the same raw data may not stand for
    # two lots of one store)
    cli_db = tmp_path / "cli.db"
    shutil.copyfile(db, cli_db)
    out = tmp_path / "cli-result"
    ran = exo("analyze", *replicates, "--method", METHOD, "--instrument", SERIAL, "--db", cli_db,
              "--out", out)  # fmt: skip
    assert ran.code == 0, ran.stderr
    entered = exo("measurement", "add", "L-CLI", out / "result.json", "--method", f"{METHOD}@1",
                  "--db", cli_db, "--user", "ana", "--password-stdin", stdin=_pw("ana") + "\n")  # fmt: skip
    assert entered.code == 0, entered.stderr

    settings = Settings(database_url=f"sqlite:///{db}", data_dir=tmp_path / "data")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        csrf = _page_login(client, "ana")
        form = client.get("/lots/L-WEB/upload").text
        assert f'<option value="{METHOD}@1">' in form and f'<option value="{SERIAL}">' in form
        files = [("file", (v.name, v.read_bytes(), "image/tiff")) for v in replicates]
        response = client.post(
            "/lots/L-WEB/upload",
            data={"csrf_token": csrf, "method": f"{METHOD}@1", "instrument": SERIAL},
            files=files,
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text[-2000:]
        job = int(re.fullmatch(r"/jobs/(\d+)", response.headers["location"]).group(1))
        ended = _wait_done(client, job)
        assert ended["state"] == "done", ended["html"][-3000:]
        page = client.get(f"/jobs/{job}").text
        lot_page = client.get("/lots/L-WEB").text
        api = client.post("/api/v1/login", json={"username": "ana", "password": _pw("ana")}).json()[
            "token"
        ]
        status = client.get(
            f"/api/v1/jobs/{job}", headers={"Authorization": f"Bearer {api}"}
        ).json()

    cli = Measurement.load(out / "result.json")
    with Store.open(f"sqlite:///{cli_db}") as store:
        by_cli = store.evaluate("L-CLI")
    with Store.open(f"sqlite:///{db}") as store:
        web_all = store.lot_data("L-WEB").nta_all
        by_web = store.evaluate("L-WEB")
    (web,) = web_all  # one measurement for the two replicates

    # the same analysis: the same figures, to 1e-9 relative (a reported figure has 3-4 digits).
    # Not to the last bit: the command runs here inside the test process, whose BLAS may use
    # several threads where the web's worker uses one, and a sum in another order rounds
    # differently: 1e-16 relative on D50 and 3e-11 on the size density's far tail in CI runs.
    def same(a, b):
        return a == pytest.approx(b, rel=1e-9, abs=1e-15)

    assert same(web.size.d50_nm, cli.size.d50_nm) and same(web.size.d10_nm, cli.size.d10_nm)
    assert same(web.size.d90_nm, cli.size.d90_nm) and same(web.size.density, cli.size.density)
    assert same(web.concentration.particles_per_ml, cli.concentration.particles_per_ml)
    assert same(web.concentration.sd_per_ml, cli.concentration.sd_per_ml)
    assert same([v.d50_nm for v in web.per_video], [v.d50_nm for v in cli.per_video])
    assert [v.tracks for v in web.per_video] == [v.tracks for v in cli.per_video]
    assert len(web.per_video) == 2 and web.tracks.count == cli.tracks.count
    # under the method, on the instrument, with its stored calibration
    assert web.concentration.calibrated and cli.concentration.calibrated
    assert web.settings["method"] == cli.settings["method"]
    assert web.settings["method"]["calibration_id"] == 1
    assert web.settings["method"]["instrument_serial"] == SERIAL
    # the lot conforms where the command line's does, on the same criteria
    assert by_cli.decision == by_web.decision == "conforms"
    assert [(c.name, c.result) for c in by_web.criteria] == [
        (c.name, c.result) for c in by_cli.criteria
    ]
    for w, c in zip(by_web.criteria, by_cli.criteria, strict=True):
        assert w.value == c.value or same(w.value, c.value), w.name
    # the job page: each replicate's own figures and the pooled result, with the method
    assert page.count('class="replicate"') == 2 and 'id="pooled"' in page
    assert f"method <b>{METHOD}@1</b> on instrument {SERIAL}, stored calibration 1" in page
    # the lot page names the measurement's method, with a link to it
    assert f'<td class="method"><a href="/methods/{METHOD}%401">{METHOD}@1</a></td>' in lot_page
    assert same([r["d50_nm"] for r in status["replicates"]], [v.d50_nm for v in cli.per_video])
    assert same(status["pooled"]["d50_nm"], cli.size.d50_nm)
    assert same(status["pooled"]["particles_per_ml"], cli.concentration.particles_per_ml)
    assert json.dumps(status["method"]["name"]) == json.dumps(METHOD)
