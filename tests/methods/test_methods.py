"""Methods: approved by QA and never by their author; an analysis under a method uses its
settings and its record names the method, instrument and calibration; values given against the
file or the method are refused unless a reason is given; a specification that names a method is
inconclusive on records made without it; exports are matched to the register by serial."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from method_helpers import METHOD, METHOD_YAML, SERIAL, one_line_error, stored_calibration_args

from exocheck.auth import Accounts
from exocheck.errors import SpecificationError
from exocheck.records import Measurement
from exocheck.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
sys.path.insert(0, str(Path(__file__).parents[1] / "instruments"))
from builders import zetaview_size
from qc_factories import SPEC_YAML, lognormal_measurement


def _pw(name: str) -> str:
    return f"{name}-secret-pw"


@pytest.fixture
def users_db(tmp_path) -> Path:
    """A store with users: adam (admin), ana (analyst), rita (reviewer), quinn and quentin (QA)."""
    db = tmp_path / "users.db"
    with Store.open(f"sqlite:///{db}") as store:
        accounts = Accounts(store)
        for name, role in (("adam", "admin"), ("ana", "analyst"), ("rita", "reviewer"),
                           ("quinn", "qa"), ("quentin", "qa")):  # fmt: skip
            accounts.add_user(name, role=role, password=_pw(name), by="setup")
    return db


def _as(exo, name: str, *args):
    return exo(*args, "--user", name, "--password-stdin", stdin=_pw(name) + "\n")


def test_approval_needs_qa_and_another_person(exo, users_db, method_file, tmp_path):
    assert _as(exo, "ana", "method", "add", method_file, "--db", users_db).code == 0
    listed = json.loads(exo("method", "list", "--db", users_db, "--json").stdout)
    assert [(m["method"], m["status"]) for m in listed] == [(f"{METHOD}@1", "draft")]
    for name in ("ana", "rita"):  # the author, and a reviewer: neither role approves
        refused = _as(exo, name, "method", "approve", f"{METHOD}@1", "--db", users_db)
        one_line_error(refused, "cannot approve analytical methods (it takes: qa)")
    approved = _as(exo, "quinn", "method", "approve", f"{METHOD}@1", "--db", users_db)
    assert approved.code == 0, approved.stderr
    again = _as(exo, "quentin", "method", "approve", f"{METHOD}@1", "--db", users_db)
    one_line_error(again, "was approved already by quinn")
    # QA writes version 2 and may not approve it: four eyes
    second = tmp_path / "v2.yaml"
    second.write_text(METHOD_YAML.replace("version: 1", "version: 2"))
    assert _as(exo, "quinn", "method", "add", second, "--db", users_db).code == 0
    own = _as(exo, "quinn", "method", "approve", f"{METHOD}@2", "--db", users_db)
    one_line_error(own, "quinn wrote method nta-ev-scatter@2; another person approves it")
    shown = json.loads(exo("method", "show", f"{METHOD}@2", "--db", users_db, "--json").stdout)
    assert shown["status"] == "draft" and shown["approved_by"] is None
    approved = json.loads(exo("method", "list", "--approved", "--db", users_db, "--json").stdout)
    assert [(m["method"], m["approved_by"]) for m in approved] == [(f"{METHOD}@1", "quinn")]
    # the same version again with other text is refused; a version never changes
    changed = tmp_path / "changed.yaml"
    changed.write_text(METHOD_YAML.replace("bootstrap: 3", "bootstrap: 5"))
    one_line_error(_as(exo, "ana", "method", "add", changed, "--db", users_db), "never changes")


def test_analyze_with_method_records_it(exo, beads, lab, tmp_path):
    out = tmp_path / "r"
    base = ["analyze", beads, "--method", METHOD, "--db", lab, "--out", out]
    one_line_error(exo(*base), "names its instrument: give --instrument SERIAL")
    one_line_error(exo(*base, "--instrument", SERIAL), "requires a bead calibration of instrument")
    assert not out.exists()
    stored = exo(*stored_calibration_args(beads, lab))
    assert stored.code == 0, stored.stderr
    ran = exo(*base, "--instrument", SERIAL)
    assert ran.code == 0, ran.stderr
    assert f"method {METHOD}@1 on instrument {SERIAL}, calibration 1" in ran.stdout
    record = Measurement.load(out / "result.json")
    method = record.settings["method"]
    assert (method["name"], method["version"], method["instrument_serial"]) == (METHOD, 1, SERIAL)
    assert method["calibration_id"] == 1 and method["override"] is None
    assert record.settings["calibration"]["calibration_id"] == 1
    assert record.settings["analysis"]["sizing"]["n_bootstrap"] == 3  # the method's, not 40
    assert record.settings["conditions"]["refractive_index"] == 1.39  # the product's index
    assert record.concentration.calibrated is True
    from exocheck.methods import calibration_of, lacks_method, method_label, method_of

    assert method_label(record) == f"{METHOD}@1" and method_of(record)["calibration_id"] == 1
    assert calibration_of(record)["standard_lot"] == "PS100-2291"
    # the stored JSON reads the same; "no method" is a particle record without a stamp only
    stored = record.model_dump(mode="json")
    assert method_label(stored) == f"{METHOD}@1" and not lacks_method(stored, "nta")
    bare = record.model_copy(update={"settings": {}})
    assert lacks_method(bare) and method_label(bare) == "no method"
    assert lacks_method(bare.model_dump(mode="json"), "nta")
    assert not lacks_method({"ug_per_ml": 5.0, "method": "BCA"}, "protein")
    assert not lacks_method({"results": {"sterility": "negative"}}, "safety")


def test_values_against_the_method_or_the_file(exo, beads, lab, tmp_path):
    assert exo(*stored_calibration_args(beads, lab)).code == 0
    out = tmp_path / "r"
    base = ["analyze", beads, "--method", METHOD, "--instrument", SERIAL, "--db", lab, "--out", out]
    one_line_error(
        exo(*base, "--bootstrap", 8), "--bootstrap 8 contradicts method nta-ev-scatter@1"
    )
    one_line_error(
        exo(*base, "--fps", 25), "--fps 25 contradicts method nta-ev-scatter@1 (30 fps)",
        "--override REASON",
    )  # fmt: skip
    assert not out.exists()
    reason = "stroboscopic check of the camera clock"
    # the calibration then holds for other optics too: refused on its own, unless a reason
    ran = exo(*base, "--fps", 25, "--override", reason, "--calibration-override", reason)
    assert ran.code == 0, ran.stderr
    record = Measurement.load(out / "result.json")
    assert record.settings["method"]["override"] == {
        "reason": reason,
        "differences": ["--fps 25 contradicts method nta-ev-scatter@1 (30 fps)"],
    }
    assert record.settings["override"] == {
        "reason": reason,
        "differences": ["video.tif: --fps 25 contradicts the file's 30 fps"],
    }
    assert record.settings["per_video"][0]["fps"] == 25
    assert "frame rate 25 fps" in record.concentration.calibration_mismatch


def test_fps_against_the_file_without_a_method(exo, beads, tmp_path):
    """The issue's case: --fps 3 against the file's 30 fps gave D50 1434 nm and exit 0."""
    out = tmp_path / "r"
    one_line_error(
        exo("analyze", beads, "--fps", 3, "--bootstrap", 0, "--out", out),
        "video.tif: --fps 3 contradicts the file's 30 fps",
    )
    assert not out.exists()
    ran = exo("analyze", beads, "--fps", 3, "--bootstrap", 0, "--override", "header wrong",
              "--out", out)  # fmt: skip
    assert ran.code == 0, ran.stderr
    assert "no method: settings from the command line" in ran.stdout
    record = Measurement.load(out / "result.json")
    assert record.settings["override"]["reason"] == "header wrong"
    assert record.settings["per_video"][0]["fps"] == 3
    assert "method" not in record.settings


def test_instrument_of_another_model_or_overdue_is_refused(exo, beads, lab, tmp_path):
    assert exo("instrument", "add", "ZV-7", "--model", "ZetaView PMX-120", "--db", lab,
               "--by", "quinn").code == 0  # fmt: skip
    assert exo("instrument", "add", "NS-OLD", "--model", "NanoSight NS300",
               "--qualification-due", "2021-03-01", "--db", lab, "--by", "quinn").code == 0  # fmt: skip
    out = tmp_path / "r"
    base = ["analyze", beads, "--method", METHOD, "--db", lab, "--out", out]
    one_line_error(exo(*base, "--instrument", "ZV-7"), "ZV-7 is a ZetaView PMX-120")
    one_line_error(exo(*base, "--instrument", "NS-OLD"), "its qualification was due 2021-03-01")
    one_line_error(exo(*base, "--instrument", "NS-9"), "unknown instrument 'NS-9'")
    shown = json.loads(exo("instrument", "show", "NS-OLD", "--db", lab, "--json").stdout)
    assert shown["due"] == ["its qualification was due 2021-03-01"]


def test_a_draft_method_is_not_used(exo, beads, lab, tmp_path, method_file):
    draft = tmp_path / "v2.yaml"
    draft.write_text(method_file.read_text().replace("version: 1", "version: 2"))
    assert exo("method", "add", draft, "--db", lab, "--by", "ana").code == 0
    out = tmp_path / "r"
    refused = exo("analyze", beads, "--method", f"{METHOD}@2", "--instrument", SERIAL,
                  "--db", lab, "--out", out)  # fmt: skip
    one_line_error(refused, "method nta-ev-scatter@2 is a draft: QA approves it")
    assert not out.exists()


def _spec(method: str | None) -> str:
    head = SPEC_YAML.replace("name: test-release", "name: method-release")
    return head.replace("version: 1\n", f"version: 1\nmethod: {method}\n") if method else head


def test_spec_naming_a_method_is_inconclusive_without_it():
    from exocheck.qc.lotdata import LotData
    from exocheck.qc.release import evaluate
    from exocheck.qc.specification import parse_specification

    spec = parse_specification(_spec(f"{METHOD}@1"))
    assert spec.method == f"{METHOD}@1"

    def result(stamp: dict | None):
        record = lognormal_measurement()
        if stamp is not None:
            record.settings = {"method": stamp}
        return evaluate(spec, LotData(lot="L", particles_per_unit_claim=2e10, fill_volume_ml=1.0,
                                      nta=record))  # fmt: skip

    without = result(None)
    criteria = {c.name: c for c in without.criteria}
    assert criteria["Size mode"].result == "inconclusive"
    assert (
        "made without a method; the specification requires method" in criteria["Size mode"].detail
    )
    assert criteria["Particles per vial"].result == "inconclusive"
    assert [c.code for c in without.caveats] == ["method"]
    under = result({"name": METHOD, "version": 1, "instrument_serial": SERIAL})
    assert not under.caveats
    assert {c.name: c.result for c in under.criteria}["Size mode"] == "pass"
    other = result({"name": METHOD, "version": 2})
    assert other.caveats[0].detail.startswith(f"made under method {METHOD}@2")
    any_version = parse_specification(_spec(METHOD))
    record = lognormal_measurement()
    record.settings = {"method": {"name": METHOD, "version": 2}}
    assert not evaluate(any_version, LotData(lot="L", nta=record)).caveats
    with pytest.raises(SpecificationError, match="give 'method' or 'capture', not both"):
        parse_specification(_spec(METHOD).replace("criteria:", "capture: {fps: 30}\ncriteria:"))


def test_export_matched_by_serial_and_entered_under_a_method(exo, lab, tmp_path, beads):
    export = tmp_path / "20210401_0003_EV_lot_17_size_488.txt"
    export.write_bytes(zetaview_size().txt)  # ZetaView S/N 19-412
    zv_method = tmp_path / "zv.yaml"
    zv_method.write_text(
        METHOD_YAML.replace(f"name: {METHOD}", "name: zv-ev").replace(
            "instrument_model: NanoSight NS300", "instrument_model: ZetaView PMX-120"
        )
    )
    for args in (
        ("instrument", "add", "19-412", "--model", "ZetaView PMX-120", "--by", "quinn"),
        ("method", "add", zv_method, "--by", "ana"),
        ("method", "approve", "zv-ev@1", "--by", "quinn"),
        ("product", "add", "EXO-1", "--by", "quinn"),
        ("lot", "add", "L-1", "--product", "EXO-1", "--by", "ana"),
        ("lot", "add", "L-2", "--product", "EXO-1", "--by", "ana"),
    ):
        done = exo(*args, "--db", lab)
        assert done.code == 0, done.stderr
    one_line_error(
        exo("measurement", "add", "L-1", export, "--method", METHOD, "--db", lab, "--by", "ana"),
        "the export's instrument 19-412 is a ZetaView PMX-120",
    )
    added = exo(
        "measurement", "add", "L-1", export, "--method", "zv-ev", "--db", lab, "--by", "ana"
    )
    assert added.code == 0, added.stderr
    with Store.open(f"sqlite:///{lab}") as store:
        data = store.lot_data("L-1").nta
        event = [e for e in store.history("L-1") if e["action"] == "measurement.add.nta"][-1]
        from exocheck.methods import instrument_of

        assert instrument_of(store, data)["model"] == "ZetaView PMX-120"
    method = data.settings["method"]
    assert (method["name"], method["version"], method["declared"]) == ("zv-ev", 1, True)
    assert method["instrument_serial"] == "19-412" and method["calibration_id"] is None
    assert event["after"]["instrument"] == {
        "serial": "19-412",
        "registered": True,
        "model": "ZetaView PMX-120",
    }
    assert event["after"]["method"] == "zv-ev@1"
    # an exocheck record made without a method cannot be entered as made under one
    out = tmp_path / "plain"
    assert exo("analyze", beads, "--bootstrap", 0, "--out", out).code == 0
    one_line_error(
        exo("measurement", "add", "L-2", out / "result.json", "--method", METHOD, "--db", lab,
            "--by", "ana"),
        "the record was analysed without a method: analyse the videos again with --method",
    )  # fmt: skip
