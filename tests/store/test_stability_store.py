"""Stability studies in the store (SQLite and PostgreSQL): CSV import round trip, atomic
refusal of bad files and unknown lots, shelf life from the database against the CSV and the
published LeBlond 2011 answers, particles at expiry on the certificate, audit trail, CLI."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from alembic import command
from sqlalchemy import func, select, text

from exocheck.cli.main import run
from exocheck.errors import StabilityError, StoreError
from exocheck.qc.expiry import particles_at_expiry
from exocheck.qc.release import fmt
from exocheck.qc.stability import estimate_shelf_life
from exocheck.qc.study import read_study_csv
from exocheck.report import render_html
from exocheck.store import Store
from exocheck.store import models as m
from exocheck.store.session import alembic_config, make_engine

LEBLOND = Path(__file__).parents[1] / "qc" / "data"
TABLES = (m.StabilityStudy, m.StorageCondition, m.StabilityResult, m.AuditEvent, m.Attachment)
EV_LOTS = {"EV-01": 1.10e11, "EV-02": 1.05e11, "EV-03": 1.15e11}
# condition -> first-order loss rate per day (assumed, like docs/stability.md's example)
EV_CONDITIONS = {(4.0, "polypropylene", "PBS"): 0.05, (-80.0, "low-binding", None): 0.001}
EV_PROTOCOL = {
    "lower_limit": 7e10,
    "transform": "log",
    "storage": "refrigerated",
    "accelerated_change": "significant",
    "condition": {"temperature_c": 4},
}


def counts(store: Store) -> tuple[int, ...]:
    with store.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES)


def ev_study_csv(path: Path, lots: dict[str, float] = EV_LOTS) -> Path:
    """Three lots under two storage conditions (one without a buffer), days 0-10, 3 % CV."""
    rng = np.random.default_rng(6)
    rows = []
    for (temp, container, buffer), k in EV_CONDITIONS.items():
        for lot, start in lots.items():
            for day in (0, 1, 2, 4, 7, 10):
                value = start * math.exp(-k * day) * math.exp(rng.normal(0, 0.03))
                rows.append(
                    {
                        "lot": lot,
                        "day": day,
                        "temperature_c": temp,
                        "container": container,
                        "buffer": buffer,
                        "concentration_per_ml": value,
                    }
                )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def leblond_csv(tmp_path: Path, file: str, batches: list[str]) -> Path:
    data = pd.read_csv(LEBLOND / file)
    out = tmp_path / f"{file.removesuffix('.csv')}_{'_'.join(batches)}.csv"
    data[data["Batch"].isin(batches)].to_csv(out, index=False)
    return out


@pytest.fixture
def ev(stocked, tmp_path):
    """EXO-1 (2e10 particles per 1-mL vial) with lots EV-01..03 and the EV study stored."""
    for lot in EV_LOTS:
        stocked.add_lot(lot, "EXO-1", manufactured="2025-01-15", by="ana")
    path = ev_study_csv(tmp_path / "ev_study.csv")
    stocked.import_study(
        path,
        name="EV-storage",
        product="EXO-1",
        by="ana",
        response_col="concentration_per_ml",
        time_col="day",
        time_unit="day",
        unit="particles/mL",
        protocol=EV_PROTOCOL,
    )
    return stocked, path


def test_round_trip_csv_to_database_to_study(ev):
    store, path = ev
    original = read_study_csv(
        path,
        response_col="concentration_per_ml",
        time_col="day",
        time_unit="day",
        unit="particles/mL",
        name="EV-storage",
    )
    assert len(original.conditions) == 2 and original.conditions[1].buffer is None
    assert store.get_study("EV-storage") == original  # every float, label and index
    [info] = store.list_studies()
    assert info["study"] == "EV-storage" and info["product"] == "EXO-1"
    assert info["lots"] == list(EV_LOTS) and info["results"] == 36
    assert info["conditions"] == ["4 °C, polypropylene, PBS", "-80 °C, low-binding"]
    assert info["protocol"]["lower_limit"] == 7e10
    assert store.list_studies("EXO-1") == [info]
    before = counts(store)
    with pytest.raises(StoreError, match="study 'EV-storage' already exists"):
        store.import_study(
            path,
            name="EV-storage",
            product="EXO-1",
            by="ana",
            time_col="day",
            response_col="concentration_per_ml",
        )
    assert counts(store) == before
    # each result is linked to its lot
    with store.engine.connect() as conn:
        linked = (
            conn.execute(
                text(
                    "SELECT DISTINCT l.number FROM stability_results r JOIN lots l ON l.id = r.lot_id "
                    "WHERE r.lot_number = l.number"
                )
            )
            .scalars()
            .all()
        )
    assert sorted(linked) == sorted(EV_LOTS)


def test_import_is_audited_and_keeps_the_original_file(ev):
    store, path = ev
    [event] = [e for e in store.history() if e["action"] == "study.import"]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert event["actor"] == "ana" and event["key"] == "EV-storage"
    assert event["after"]["results"] == 36 and event["after"]["source_sha256"] == sha
    assert event["after"]["source_file"] == "ev_study.csv"
    assert store.attachment(sha) == ("ev_study.csv", path.read_bytes())
    with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE action = 'study.import'"))


def test_unknown_lot_or_bad_csv_leaves_no_rows(stocked, tmp_path):
    stocked.add_lot("EV-01", "EXO-1", by="ana")
    stocked.add_product("OTHER", by="ana")
    stocked.add_lot("EV-02", "OTHER", by="ana")
    good = ev_study_csv(tmp_path / "study.csv", {"EV-01": 1e11, "EV-02": 1e11, "EV-09": 1e11})
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text().replace("polypropylene,PBS,", "polypropylene,PBS,n/a", 1))
    before = counts(stocked)
    kw = {
        "product": "EXO-1",
        "by": "ana",
        "response_col": "concentration_per_ml",
        "time_col": "day",
        "time_unit": "day",
    }
    cases = [
        (StoreError, r"unknown lot\(s\) EV-09", good, {}),
        (StabilityError, "line 2: column concentration_per_ml is not a number", bad, {}),
        (StabilityError, "missing column", good, {"response_col": "potency"}),
        (
            StabilityError,
            "no storage condition matches",
            good,
            {"protocol": {"condition": {"temperature_c": 37}}},
        ),
        (StabilityError, "protocol transform", good, {"protocol": {"transform": "sqrt"}}),
    ]
    for error, message, path, extra in cases:
        with pytest.raises(error, match=message) as info:
            stocked.import_study(path, name="S", **(kw | extra))
        assert len(str(info.value).splitlines()) == 1
        assert counts(stocked) == before, message
    stocked.add_lot("EV-09", "EXO-1", by="ana")
    before = counts(stocked)
    with pytest.raises(StoreError, match="EV-02 are not lots of product EXO-1"):
        stocked.import_study(good, name="S", **kw)
    assert counts(stocked) == before


def test_failure_inside_the_import_rolls_back(stocked, tmp_path, monkeypatch):
    for lot in EV_LOTS:
        stocked.add_lot(lot, "EXO-1", by="ana")
    before = counts(stocked)

    def failing_audit(*args, **kwargs):  # after study, conditions and results were flushed
        raise StoreError("audit trail unavailable")

    monkeypatch.setattr(Store, "_audit", staticmethod(failing_audit))
    with pytest.raises(StoreError, match="audit trail unavailable"):
        stocked.import_study(
            ev_study_csv(tmp_path / "s.csv"),
            name="S",
            product="EXO-1",
            by="ana",
            response_col="concentration_per_ml",
            time_col="day",
        )
    monkeypatch.undo()
    assert counts(stocked) == before
    with pytest.raises(StoreError, match="unknown study 'S'"):
        stocked.get_study("S")


@pytest.mark.parametrize(
    ("file", "batches", "limits", "model", "published"),
    [
        ("exp1.csv", ["b2", "b5", "b7"], {"lower_limit": 95}, "cics", 25.9957631369),
        ("exp1.csv", ["b4", "b5", "b8"], {"lower_limit": 95}, "dids", 15.844877978),  # JMP
        ("exp2.csv", ["b4", "b5", "b8"], {"upper_limit": 0.3}, "dids", 15.844877978),
    ],
)
def test_shelf_life_from_database_equals_csv_and_leblond(
    store, tmp_path, file, batches, limits, model, published
):
    store.add_product("LEBLOND", by="ana")
    for batch in batches:
        store.add_lot(batch, "LEBLOND", by="ana")
    path = leblond_csv(tmp_path, file, batches)
    response = "Potency" if file == "exp1.csv" else "Related"
    store.import_study(
        path,
        name="Q1E",
        product="LEBLOND",
        by="ana",
        response_col=response,
        lot_col="Batch",
        time_col="Month",
        protocol=limits,
    )
    direct = estimate_shelf_life(
        pd.read_csv(path), time_col="Month", response_col=response, batch_col="Batch", **limits
    )
    stored = store.shelf_life("Q1E")
    assert stored == direct  # every number of the estimate, not only the shelf life
    assert stored.model == model
    # expirest's values carry R uniroot's 1e-4 tolerance; JMP's 15.844877978 has 11 digits
    assert stored.shelf_life == pytest.approx(published, rel=1e-6 if model == "cics" else 1e-10)
    # arguments override the stored protocol; a tighter limit gives an earlier crossing
    side, limit = next(iter(limits.items()))
    tighter = limit * (1.01 if side == "lower_limit" else 0.9)
    assert store.shelf_life("Q1E", **{side: tighter}) == estimate_shelf_life(
        pd.read_csv(path),
        time_col="Month",
        response_col=response,
        batch_col="Batch",
        **{side: tighter},
    )
    assert store.shelf_life("Q1E", **{side: tighter}).shelf_life < stored.shelf_life


def test_condition_selection(ev):
    store, path = ev
    frame = pd.read_csv(path)
    cold = frame[frame["temperature_c"] == -80]
    result = store.shelf_life("EV-storage", where={"temperature_c": "-80"}, storage="frozen")
    assert result == estimate_shelf_life(
        cold,
        time_col="day",
        response_col="concentration_per_ml",
        batch_col="lot",
        lower_limit=7e10,
        transform="log",
        storage="frozen",
        time_unit="day",
        accelerated_change="significant",
    )
    assert store.study_condition("EV-storage").label == "4 °C, polypropylene, PBS"
    with pytest.raises(StabilityError, match="cannot select a condition by 'x'"):
        store.shelf_life("EV-storage", where={"x": "1"})
    # without a labelled condition a study of two conditions needs one chosen
    store.import_study(
        path,
        name="EV-open",
        product="EXO-1",
        by="ana",
        time_col="day",
        response_col="concentration_per_ml",
        time_unit="day",
    )
    with pytest.raises(StabilityError, match="2 matching storage conditions"):
        store.shelf_life("EV-open", lower_limit=7e10, transform="log")
    assert (
        store.shelf_life(
            "EV-open",
            where={"container": "low-binding"},
            lower_limit=7e10,
            transform="log",
            storage="frozen",
            accelerated_change="significant",
        )
        == result
    )
    assert store.default_study("EXO-1") == "EV-storage"  # the only one with a limit


def test_particles_at_expiry_on_the_certificate(ev, tmp_path):
    store, path = ev
    frame = pd.read_csv(path)
    four = frame[frame["temperature_c"] == 4]
    direct = estimate_shelf_life(
        four,
        time_col="day",
        response_col="concentration_per_ml",
        batch_col="lot",
        lower_limit=7e10,
        transform="log",
        storage="refrigerated",
        time_unit="day",
        accelerated_change="significant",
    )
    expected = particles_at_expiry(direct, label_claim_per_unit=2e10)
    assert expected.expiry == direct.supported_shelf_life > 0
    got = store.particles_at_expiry("EV-01")  # the product's only study with a limit
    assert got.study == "EV-storage" and got.expiry_from == "supported shelf life"
    assert got.particles == expected
    made = store.lot_info("EV-01")["manufactured"]
    assert got.expiry_date == made + timedelta(days=direct.supported_shelf_life)
    html = render_html(store, "EV-01", expiry=got.for_certificate())
    section = html[html.index('id="expiry"') :]
    section = section[: section.index("</div>")]
    for number in (
        fmt(expected.predicted_per_unit),
        fmt(expected.lower_bound_per_unit),
        fmt(2e10),
        got.expiry_date.strftime("%Y-%m-%d"),
        "EV-storage",
        f"{expected.fraction_remaining:.1%}",
    ):
        assert number in section, number
    # a lot with its own expiry date is predicted at that date (3 days after manufacture)
    store.add_lot("EV-04", "EXO-1", manufactured="2025-02-01", expiry="2025-02-04", by="ana")
    at_date = store.particles_at_expiry("EV-04", study="EV-storage")
    assert at_date.expiry_from == "lot expiry date" and at_date.expiry_time == pytest.approx(3)
    assert at_date.particles == particles_at_expiry(
        direct, expiry=at_date.expiry_time, label_claim_per_unit=2e10
    )
    store.add_product("NOCLAIM", by="ana")
    store.add_lot("N-1", "NOCLAIM", by="ana")
    with pytest.raises(StoreError, match="no label claim"):
        store.particles_at_expiry("N-1", study="EV-storage")


def test_migration_from_the_first_schema_keeps_data(db_url):
    engine = make_engine(db_url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO products (name, unit_name, created_at, created_by) "
                "VALUES ('OLD', 'vial', CURRENT_TIMESTAMP, 'ana')"
            )
        )
    engine.dispose()
    with Store.open(db_url) as store:
        assert [p["product"] for p in store.list_products()] == ["OLD"]
        assert store.list_studies() == []


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["exocheck", *args])
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_study_commands_and_certificate(stocked, tmp_path, monkeypatch, capsys):
    url = stocked.engine.url.render_as_string(hide_password=False)
    for lot in EV_LOTS:
        stocked.add_lot(lot, "EXO-1", manufactured="2025-01-15", by="ana")
    path = ev_study_csv(tmp_path / "ev.csv")
    base = [
        "study",
        "import",
        str(path),
        "--name",
        "EV",
        "--product",
        "EXO-1",
        "--response-col",
        "concentration_per_ml",
        "--time-col",
        "day",
        "--time-unit",
        "day",
        "--db",
        url,
        "--by",
        "ana",
    ]
    events = len(stocked.history())
    code, _, err = cli(monkeypatch, capsys, *base, "--where", "temperature_c=37")
    assert code == 2 and "no storage condition matches" in err and len(err.splitlines()) == 1
    assert len(stocked.history()) == events
    code, out, err = cli(
        monkeypatch,
        capsys,
        *base,
        "--lower-limit",
        "7e10",
        "--transform",
        "log",
        "--storage",
        "refrigerated",
        "--accelerated-change",
        "significant",
        "--where",
        "temperature_c=4",
    )
    assert code == 0, err
    assert "36 results of 3 lot(s) under 2 condition(s)" in out
    monkeypatch.setenv("EXOCHECK_DATABASE_URL", url)  # no --db: the environment variable
    code, out, _ = cli(monkeypatch, capsys, "study", "list", "--json")
    assert code == 0 and [s["study"] for s in json.loads(out)] == ["EV"]
    code, out, err = cli(monkeypatch, capsys, "study", "shelf-life", "EV", "--json")
    assert code == 0, err
    data = json.loads(out)
    direct = stocked.shelf_life("EV")
    assert data["shelf_life"] == direct.shelf_life and data["model"] == direct.model
    assert data["condition"] == {
        "temperature_c": 4.0,
        "container": "polypropylene",
        "buffer": "PBS",
    }
    claim = particles_at_expiry(direct, label_claim_per_unit=2e10)  # the product's claim
    assert data["particles_at_expiry"]["lower_bound_per_unit"] == claim.lower_bound_per_unit
    code, out, _ = cli(
        monkeypatch, capsys, "study", "shelf-life", "EV", "--json", "--lower-limit", "9e10"
    )
    assert json.loads(out)["shelf_life"] < data["shelf_life"]
    png = tmp_path / "ev.png"
    code, out, _ = cli(monkeypatch, capsys, "study", "shelf-life", "EV", "--plot", str(png))
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG" and "supported shelf life" in out
    # the certificate shows the study without being asked (the product's only study) ...
    auto, named, plain = (tmp_path / f"{x}.html" for x in ("auto", "named", "plain"))
    assert cli(monkeypatch, capsys, "coa", "EV-01", "--out", str(auto))[0] == 0
    assert cli(monkeypatch, capsys, "coa", "EV-01", "--out", str(named), "--study", "EV")[0] == 0
    assert cli(monkeypatch, capsys, "coa", "EV-01", "--out", str(plain), "--no-study")[0] == 0
    for page in (auto, named):
        html = page.read_text()
        assert "Remaining particles at expiry" in html
        assert fmt(claim.lower_bound_per_unit) in html and fmt(claim.predicted_per_unit) in html
    assert "Remaining particles at expiry" not in plain.read_text()
    code, _, err = cli(
        monkeypatch, capsys, "coa", "EV-01", "--out", str(tmp_path / "x.html"), "--study", "NOPE"
    )
    assert code == 2 and "unknown study 'NOPE'" in err and not (tmp_path / "x.html").exists()
    code, _, err = cli(monkeypatch, capsys, "study", "shelf-life", "NOPE")
    assert code == 2 and "unknown study 'NOPE'" in err
