"""Bead calibrations that are checked: the certified size, one narrow peak, a standard within its
expiry; refused with one line and nothing written or stored; stored ones expire, and a
concentration from an expired calibration is inconclusive at release."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from method_helpers import METHOD, SERIAL, one_line_error, stored_calibration_args

from exocheck.methods.calibrations import CalibrationRefused, check_standard, span_of
from exocheck.nta.concentration import Calibration


def _calibration(d10: float, d50: float, d90: float, certified: float | None = 100.0):
    return Calibration(
        depth_um=10.0, bead_brightness_ratio=12.0, bead_diameter_nm=certified,
        known_concentration_per_ml=1e9, pixel_size_um=0.166, fps=30.0, temperature_c=25.0,
        measured_d10_nm=d10, measured_d50_nm=d50, measured_d90_nm=d90,
    )  # fmt: skip


def _stored_rows(db) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT count(*) FROM calibrations").fetchone()[0]


def test_the_check_on_numbers():
    ok = check_standard(_calibration(92.0, 104.9, 116.0))  # +4.9 %, span 0.23
    assert ok["deviation_percent"] == pytest.approx(4.9) and ok["span"] == pytest.approx(24 / 104.9)
    with pytest.raises(
        CalibrationRefused, match=r"measure about 105 nm \(D50\), not the certified"
    ):
        check_standard(_calibration(95.0, 105.2, 115.0))  # +5.2 %
    with pytest.raises(CalibrationRefused, match="not one narrow peak: span"):
        check_standard(_calibration(70.0, 100.0, 120.0))  # span 0.50, right D50
    check_standard(_calibration(70.0, 100.0, 120.0), max_span=0.6)  # a looser bound accepts it
    check_standard(_calibration(95.0, 130.0, 140.0, certified=None))  # no certified size given
    assert span_of(_calibration(90.0, 100.0, 110.0)) == pytest.approx(0.2)


def test_wrong_bead_diameter_refused_nothing_written(exo, beads, tmp_path):
    """The issue's case: 100 nm beads calibrated as 200 nm beads were accepted."""
    cal = tmp_path / "cal.json"
    outcome = exo("calibrate", beads, "--known-concentration-per-ml", 1e9,
                  "--bead-diameter-nm", 200, "--out", cal)  # fmt: skip
    one_line_error(outcome, "the beads measure about 99 nm (D50), not the certified 200 nm",
                   "±5 % allowed")  # fmt: skip
    assert not cal.exists() and list(tmp_path.iterdir()) == []


def test_wrong_bead_diameter_refused_nothing_stored(exo, beads, lab):
    args = stored_calibration_args(beads, lab)
    args[args.index("--bead-diameter-nm") + 1] = 110  # 10 % off
    one_line_error(exo(*args), "not the certified 110 nm (-10 %, ±5 % allowed)")
    assert _stored_rows(lab) == 0


def test_an_ev_sample_is_not_a_bead_standard(exo, ev, lab, tmp_path):
    """An EV sample is one broad distribution: refused whatever diameter it is said to have."""
    cal = tmp_path / "ev-cal.json"
    for diameter in (100, 150):
        outcome = exo("calibrate", ev, "--known-concentration-per-ml", 3e9,
                      "--bead-diameter-nm", diameter, "--out", cal)  # fmt: skip
        one_line_error(outcome, "not one narrow peak: span (D90−D10)/D50", "above 0.45")
    assert not cal.exists()
    args = stored_calibration_args(ev, lab)
    one_line_error(exo(*args), "not one narrow peak")
    assert _stored_rows(lab) == 0


def test_expired_standard_refused(exo, beads, lab, tmp_path):
    args = stored_calibration_args(beads, lab)
    args[args.index("--standard-expiry") + 1] = "2020-06-30"
    one_line_error(exo(*args), "the bead standard (lot PS100-2291) expired on 2020-06-30")
    assert _stored_rows(lab) == 0


def test_stored_calibration_states_its_standard_and_expires(exo, beads, lab, tmp_path):
    missing = [a for a in stored_calibration_args(beads, lab) if a != "--standard-lot"]
    missing.remove("PS100-2291")
    one_line_error(exo(*missing), "a stored calibration states its standard: give --standard-lot")
    assert _stored_rows(lab) == 0
    cal = tmp_path / "cal.json"
    done = exo(*stored_calibration_args(beads, lab), "--out", cal)
    assert done.code == 0, done.stderr
    assert "stored as calibration 1" in done.stdout
    listed = exo("calibration", "list", "--db", lab, "--json")
    (row,) = json.loads(listed.stdout)
    assert row["instrument"] == SERIAL and row["method"] == f"{METHOD}@1"
    assert row["standard_lot"] == "PS100-2291" and row["standard_expiry"] == "2099-12-31"
    assert row["measured_d50_nm"] == pytest.approx(100, abs=5) and row["span"] < 0.45
    made = datetime.fromisoformat(row["made_at"])
    until = datetime.fromisoformat(row["valid_until"])
    assert until - made == pytest.approx(timedelta(days=30), abs=timedelta(seconds=5))  # method
    saved = json.loads(cal.read_text())
    assert saved["calibration_id"] == 1 and saved["valid_until"] == row["valid_until"]
    assert saved["standard_lot"] == "PS100-2291" and saved["instrument_serial"] == SERIAL


def test_expired_calibration_makes_the_concentration_inconclusive(exo, beads, tmp_path):
    """A calibration past its validity when the sample is measured: every criterion computed
    from the concentration is inconclusive (caveat calibration-expired); the size criteria are
    still judged. The same calibration within its validity lets the concentration decide."""
    cal = tmp_path / "cal.json"
    made = exo("calibrate", beads, "--known-concentration-per-ml", 1e9, "--bead-diameter-nm",
               100, "--valid-days", 30, "--out", cal)  # fmt: skip
    assert made.code == 0, made.stderr
    current = json.loads(cal.read_text())
    assert datetime.fromisoformat(current["valid_until"]) > datetime.now(UTC)
    expired = tmp_path / "expired.json"
    past = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat()
    expired.write_text(json.dumps(current | {"valid_until": past}))
    db = tmp_path / "qc.db"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "schema: exocheck.spec/1\nname: beads-release\nversion: 1\ncriteria:\n"
        "  - {name: Size mode, kind: range, quantity: size.mode_nm, min: 50, max: 200}\n"
        "  - {name: Concentration, kind: range, quantity: concentration.particles_per_ml,"
        " min: 1.0e+8, max: 1.0e+11}\n"
    )
    assert exo("db", "init", "--db", db).code == 0
    assert exo("product", "add", "BEADS", "--db", db, "--by", "qa").code == 0
    assert exo("spec", "add", spec, "--product", "BEADS", "--db", db, "--by", "qa").code == 0
    results = {}
    for name, calibration in (("current", cal), ("expired", expired)):
        out = tmp_path / name
        ran = exo("analyze", beads, "--calibration", calibration, "--bootstrap", 3, "--out", out)
        assert ran.code == 0, ran.stderr
        lot = exo("lot", "add", f"L-{name}", "--product", "BEADS", "--db", db, "--by", "ana")
        assert lot.code == 0, lot.stderr
        added = exo("measurement", "add", f"L-{name}", out / "result.json", "--db", db,
                    "--by", "ana", "--allow-reuse", "one bead video under two calibrations")  # fmt: skip
        assert added.code == 0, added.stderr
        released = exo("release", f"L-{name}", "--db", db, "--json")
        results[name] = json.loads(released.stdout)
    criteria = {c["name"]: c for c in results["expired"]["criteria"]}
    assert criteria["Concentration"]["result"] == "inconclusive"
    assert criteria["Size mode"]["result"] == "pass"
    (caveat,) = results["expired"]["caveats"]
    assert caveat["code"] == "calibration-expired" and "valid until" in caveat["detail"]
    assert results["expired"]["decision"] == "inconclusive"
    current_criteria = {c["name"]: c for c in results["current"]["criteria"]}
    assert current_criteria["Concentration"]["result"] == "pass"
    assert results["current"]["decision"] == "conforms"
    assert not results["current"].get("caveats")


def test_an_expired_record_without_validity_is_not_flagged():
    """A calibration that states no validity (made before calibrations expired) is not taken
    as expired: the caveat needs a stated valid_until."""
    from exocheck.qc.evidence import record_caveats
    from exocheck.records import Concentration, Measurement, Source

    record = Measurement(
        source=Source(instrument="exocheck"),
        concentration=Concentration(particles_per_ml=1e9, calibrated=True),
        settings={"calibration": {"depth_um": 10.0, "valid_until": None}},
    )
    assert record_caveats(record) == []
    record.settings = {"calibration": {"valid_until": "2000-01-01T00:00:00+00:00"}}
    (caveat,) = record_caveats(record)
    assert caveat.code == "calibration-expired" and caveat.undermines == {"concentration"}


def test_instruments_methods_and_calibrations_are_sealed(exo, beads, lab):
    """The rows an analysis cites are in the audit chain: an edit past exocheck is named."""
    assert exo(*stored_calibration_args(beads, lab)).code == 0
    intact = exo("audit", "verify", "--db", lab)
    assert intact.code == 0 and "3 of 3 record(s) match their hash" in intact.stdout, intact.stdout
    with sqlite3.connect(lab) as connection:
        connection.execute("UPDATE calibrations SET span = 0.1 WHERE id = 1")
        connection.execute("UPDATE methods SET approved_by = 'ana' WHERE name = ?", (METHOD,))
    broken = exo("audit", "verify", "--db", lab)
    assert broken.code == 1
    assert "calibration 1: its stored content no longer matches" in broken.stdout + broken.stderr
    assert (
        f"method {METHOD}@1: its stored content no longer matches" in broken.stdout + broken.stderr
    )
