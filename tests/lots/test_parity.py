"""One lot journey, scripted twice: through the command line and through the REST API, on two
copies of the same store. Both shells call :mod:`exocheck.lots`, so they must end in the same
states, decisions, audit actions and certificate content, step by step."""

from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
from qc_factories import lognormal_measurement
from web_helpers import password, stock

from exocheck.cli.main import run
from exocheck.errors import ExocheckError
from exocheck.lots.certificate import certificate
from exocheck.lots.status import lot_state
from exocheck.store import Store
from exocheck.web import Settings, create_app

LOT = "P-001"
MARKERS = {"CD9": "present", "CD63": "present", "CD81": "present", "TSG101": "present"}
MARKERS |= {"calnexin": "absent"}
SAFETY = {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}
#: what differs between two runs of the same journey: times, random ids, hashes over them
_VARYING = re.compile(
    r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( ?(UTC|[A-Z]{3,4})|[+-]\d{2}:?\d{2}|Z)?"
    r"|\b[0-9a-f]{64}\b|COA(-[0-9A-F]{4}){4}"
)


@pytest.fixture(scope="module")
def stocked(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parity")
    stock(f"sqlite:///{folder / 'qc.db'}", folder)
    good = folder / "good.json"
    good.write_text(lognormal_measurement(particles_per_ml=2.1e10, sample=LOT).to_json())
    wrong = folder / "wrong.json"
    wrong.write_text(lognormal_measurement(particles_per_ml=4e9, sample=LOT).to_json())
    return folder


def _cli(monkeypatch, capsys, db: str, *args: str, who: str | None = None) -> tuple[int, str]:
    argv = ["exocheck", *args, "--db", db]
    stdin = ""
    if who is not None:
        argv += ["--user", who, "--password-stdin"]
        stdin = password(who) + "\n"
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out + err


def _snapshot(url: str) -> dict:
    with Store.open(url) as store:
        state = lot_state(store, LOT)
        result = store.evaluate(LOT)
        events = [e["action"] for e in store.history(LOT)]
        try:
            document, _ = certificate(store, LOT, by="parity", suffix=".html")
            text = _VARYING.sub("…", re.sub(r"<[^>]+>", " ", document.content.decode()))
            text = " ".join(text.split())
        except ExocheckError as exc:  # the refusal itself is compared
            text = f"{type(exc).__name__}: {exc}"
    return {
        "status": state["status"],
        "decision": state["decision"],
        "missing": state["missing"],
        "criteria": [(c.name, c.result) for c in result.criteria],
        "events": events,
        "certificate": text,
    }


def test_the_same_journey_through_cli_and_rest(stocked, tmp_path, monkeypatch, capsys):
    cli_db, rest_db = tmp_path / "cli.db", tmp_path / "rest.db"
    shutil.copyfile(stocked / "qc.db", cli_db)
    shutil.copyfile(stocked / "qc.db", rest_db)
    cli_url, rest_url = f"sqlite:///{cli_db}", f"sqlite:///{rest_db}"
    good, wrong = stocked / "good.json", stocked / "wrong.json"

    settings = Settings(database_url=rest_url, data_dir=tmp_path / "data")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        tokens: dict[str, dict[str, str]] = {}

        def api(who: str, method: str, url: str, **kw):
            if who not in tokens:
                login = {"username": who, "password": password(who)}
                token = client.post("/api/v1/login", json=login).json()["token"]
                tokens[who] = {"Authorization": f"Bearer {token}"}
            return client.request(method, "/api/v1" + url, headers=tokens[who], **kw)

        def upload(path: Path) -> int:
            with open(path, "rb") as fh:
                files = {"file": (path.name, fh, "application/json")}
                response = api("ana", "POST", f"/lots/{LOT}/measurements", files=files)
            assert response.status_code == 201, response.text
            return response.json()["measurement"]

        def sign(who: str, meaning: str, expect: int):
            body = {"meaning": meaning, "reason": f"{meaning} ok", "password": password(who)}
            response = api(who, "POST", f"/lots/{LOT}/signatures", json=body)
            assert response.status_code == expect, response.text

        steps = [
            (
                lambda: _cli(monkeypatch, capsys, str(cli_db), "lot", "add", LOT,
                             "--product", "EXO-1", who="ana"),
                lambda: api("ana", "POST", "/lots", json={"lot": LOT, "product": "EXO-1"}),
            ),
            (
                lambda: _cli(monkeypatch, capsys, str(cli_db), "measurement", "add", LOT,
                             str(good), who="ana"),
                lambda: upload(good),
            ),
            (
                lambda: _cli(monkeypatch, capsys, str(cli_db), "measurement", "add", LOT,
                             str(wrong), who="ana"),
                lambda: upload(wrong),
            ),
            (
                lambda: _cli(monkeypatch, capsys, str(cli_db), "measurement", "protein", LOT,
                             "--ug-per-ml", "5", who="ana"),
                lambda: api("ana", "POST", f"/lots/{LOT}/results",
                            json={"kind": "protein", "ug_per_ml": 5.0}),
            ),
            (
                lambda: _cli(monkeypatch, capsys, str(cli_db), "measurement", "markers", LOT,
                             *[f"{k}={v}" for k, v in MARKERS.items()], who="ana"),
                lambda: api("ana", "POST", f"/lots/{LOT}/results",
                            json={"kind": "markers", "results": MARKERS}),
            ),
            (
                lambda: _cli(monkeypatch, capsys, str(cli_db), "measurement", "safety", LOT,
                             *[f"{k}={v}" for k, v in SAFETY.items()], who="ana"),
                lambda: api("ana", "POST", f"/lots/{LOT}/results",
                            json={"kind": "safety", "results": SAFETY}),
            ),
        ]  # fmt: skip
        for run_cli, run_rest in steps:
            run_cli()
            run_rest()
            assert _snapshot(cli_url) == _snapshot(rest_url)
        assert _snapshot(cli_url)["decision"] == "does-not-conform"  # the wrong count counts

        # the wrong measurement (the newest) is withdrawn; QA's early approval is refused
        with Store.open(cli_url) as store:
            wrong_id = store.lot_info(LOT)["measurements"][1]["id"]
        code, text = _cli(monkeypatch, capsys, str(cli_db), "measurement", "withdraw", LOT,
                          str(wrong_id), "--reason", "wrong dilution", who="ana")  # fmt: skip
        assert code == 0, text
        done = api("ana", "POST", f"/lots/{LOT}/measurements/{wrong_id}/withdrawal",
                   json={"reason": "wrong dilution", "password": password("ana")})  # fmt: skip
        assert done.status_code == 201, done.text
        assert _snapshot(cli_url) == _snapshot(rest_url)
        assert _snapshot(cli_url)["decision"] == "conforms"
        for who, meaning, code_cli, code_rest in (
            ("quinn", "approved", 2, 403),  # no review yet
            ("rita", "reviewed", 0, 201),
            ("quinn", "approved", 0, 201),
        ):
            code, text = _cli(monkeypatch, capsys, str(cli_db), "sign", LOT, "--meaning",
                              meaning, "--reason", f"{meaning} ok", who=who)  # fmt: skip
            assert code == code_cli, text
            sign(who, meaning, code_rest)
            assert _snapshot(cli_url) == _snapshot(rest_url)
        released = _snapshot(cli_url)
        assert released["status"] == "released" and "Released by" in released["certificate"]

        code, text = _cli(monkeypatch, capsys, str(cli_db), "recall", LOT, "--reason",
                          "sterility OOS", who="quinn")  # fmt: skip
        assert code == 0, text
        recalled = api("quinn", "POST", f"/lots/{LOT}/recall",
                       json={"reason": "sterility OOS", "password": password("quinn")})  # fmt: skip
        assert recalled.status_code == 201, recalled.text
        final = _snapshot(cli_url)
        assert final == _snapshot(rest_url)
        assert final["status"] == "recalled" and final["certificate"].startswith("NotAllowed")
        assert final["events"][-1] == "lot.recall"
