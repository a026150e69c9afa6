"""Results that must not pass silently: uncalibrated or mismatched-optics concentrations, raw data
reused for another lot, impossible lot dates, expired lots; and the certificate that states what
a decision rests on (issue cases 1, 2, 5, 6 and 7)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from qc_factories import fill_lot, lognormal_measurement

from exocheck.errors import StoreError
from exocheck.qc.release import evaluate
from exocheck.records import Concentration

CONCENTRATION_CRITERIA = {"Particles per vial", "Purity"}


def _uncalibrated(particles_per_ml: float = 2e10):
    m = lognormal_measurement(particles_per_ml=particles_per_ml)
    m.concentration = Concentration(**(m.concentration.model_dump() | {"calibrated": False}))
    return m


def _mismatched(particles_per_ml: float = 2e10):
    """A record as the engine wrote it before calibrations were checked: calibrated at
    0.166 µm/px and 30 fps, applied to a 0.35 µm/px, 24 fps video."""
    m = lognormal_measurement(particles_per_ml=particles_per_ml)
    m.settings = {
        "calibration": {"depth_um": 10.0, "pixel_size_um": 0.166, "fps": 30.0},
        "per_video": [{"file": "bf.avi", "pixel_size_um": 0.35, "fps": 24.0, "exposure_ms": 20}],
    }
    return m


@pytest.mark.parametrize("make", [_uncalibrated, _mismatched], ids=["uncalibrated", "optics"])
def test_concentration_that_cannot_decide_is_inconclusive_never_conforms(stocked, make):
    """Case 1 and 2: a lot whose numbers all sit inside the limits is not released on a nominal
    or foreign-optics concentration: the concentration criteria are inconclusive and say why."""
    stocked.add_lot("L1", "EXO-1", by="ana")
    stocked.add_measurement("L1", make(), by="ana")
    stocked.add_protein("L1", 5.0, by="ana")
    stocked.add_markers(
        "L1",
        {
            "CD9": "present",
            "CD63": "present",
            "CD81": "present",
            "TSG101": "present",
            "calnexin": "absent",
        },
        by="ana",
    )
    stocked.add_safety("L1", {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by="ana")
    result = stocked.evaluate("L1")
    assert result.decision == "inconclusive"
    by_name = {c.name: c for c in result.criteria}
    for name in CONCENTRATION_CRITERIA:
        assert by_name[name].result == "inconclusive"
        assert (
            "not bead-calibrated" in by_name[name].detail
            or "other optics (pixel size 0.35 µm/px" in by_name[name].detail
        )
    assert by_name["Size mode"].result == "pass"  # sizes do not depend on the calibration
    signed = stocked.approve("L1", by="qa-lead")
    assert signed.decision == "inconclusive"
    assert stocked.lot_info("L1")["decision"] == "inconclusive"  # rejected, not released


def test_same_optics_and_instrument_records_still_decide(stocked):
    """Only what cannot decide is held back: a calibration on the same optics, or an instrument
    import (its own calibration), decides as before."""
    from exocheck.qc.release import concentration_caveat

    same = _mismatched()
    same.settings["per_video"][0] |= {"pixel_size_um": 0.1661, "fps": 30.0}
    stocked.add_lot("L1", "EXO-1", by="ana")
    fill_lot(stocked, "L2")
    assert concentration_caveat(stocked.lot_data("L2")) is None
    stocked.add_measurement("L1", same, by="ana")
    assert concentration_caveat(stocked.lot_data("L1")) is None

    # an exposure the video does not state (assumed by the analysis) is not compared
    data = stocked.lot_data("L1")
    data.nta.settings["calibration"]["exposure_ms"] = 15.0
    data.nta.settings["per_video"][0] |= {"exposure_ms": 16.67, "exposure_assumed": True}
    assert concentration_caveat(data) is None
    data.nta.settings["per_video"][0]["exposure_assumed"] = False
    assert "exposure 16.67 ms (calibration 15 ms)" in concentration_caveat(data)


def test_optics_differences_name_every_changed_setting():
    from exocheck.optics import optics_differences

    cal = {"pixel_size_um": 0.166, "fps": 30.0, "exposure_ms": 15.0, "camera_gain": None}
    assert optics_differences(cal, {"pixel_size_um": 0.166, "fps": 30.0, "camera_gain": 4}) == []
    found = optics_differences(cal, {"pixel_size_um": 0.35, "fps": 24.0, "exposure_ms": 15.2})
    assert found == [
        "pixel size 0.35 µm/px (calibration 0.166 µm/px)",
        "frame rate 24 fps (calibration 30 fps)",
    ]


def test_raw_data_of_one_lot_cannot_stand_for_a_lot_of_another_product(stocked, tmp_path):
    """Case 5: the same result file attached to lots of two products is refused; with a reason
    it is accepted and the reason is in the audit trail."""
    stocked.add_product("EXO-2", particles_per_unit=1e10, fill_volume_ml=1.0, by="ana")
    stocked.add_lot("A1", "EXO-1", by="ana")
    stocked.add_lot("B1", "EXO-2", by="ana")
    raw = tmp_path / "result.json"
    record = lognormal_measurement()
    record.provenance.inputs = {"video.avi": "ab" * 32}
    record.save(raw)
    stocked.add_measurement("A1", record, by="ana", original_file=raw)
    events = len(stocked.history())
    with pytest.raises(StoreError, match=r"already a measurement of lot A1 \(EXO-1\)"):
        stocked.add_measurement("B1", record, by="ana", original_file=raw)
    other = lognormal_measurement()  # another record file, but made from the same video
    other.provenance.inputs = {"copy.avi": "ab" * 32}
    with pytest.raises(StoreError, match="allow-reuse"):
        stocked.add_measurement("B1", other, by="ana")
    assert len(stocked.history()) == events and stocked.lot_data("B1").nta is None
    stocked.add_measurement(
        "B1",
        record,
        by="ana",
        original_file=raw,
        allow_reuse="same vial split for a comparability study",
    )
    event = stocked.history("B1")[-1]
    assert event["after"]["reuse"]["reason"] == "same vial split for a comparability study"


@pytest.mark.parametrize(
    ("made", "expires", "message"),
    [
        ("2026-05-01", "2026-04-01", "not after manufacture"),
        ("2026-05-01", "2026-05-01", "not after manufacture"),
        ((date.today() + timedelta(days=30)).isoformat(), None, "in the future"),
        ("0206-05-01", None, "not plausible"),
    ],
)
def test_impossible_lot_dates_are_refused(stocked, made, expires, message):
    """Case 6: an expiry that precedes manufacture (or equals it), a manufacture date in the
    future or a mistyped year: one line, nothing written."""
    events = len(stocked.history())
    with pytest.raises(StoreError, match=message):
        stocked.add_lot("L1", "EXO-1", manufactured=made, expiry=expires, by="ana")
    assert len(stocked.history()) == events


def test_expired_lot_cannot_be_released(stocked):
    """Case 6: a conforming lot past its expiry date is not released; a lot before expiry is."""
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    stocked.add_lot("OLD", "EXO-1", manufactured="2024-01-01", expiry=yesterday, by="ana")
    stocked.add_lot(
        "NEW",
        "EXO-1",
        manufactured="2024-01-01",
        expiry=(date.today() + timedelta(days=365)).isoformat(),
        by="ana",
    )
    for lot in ("OLD", "NEW"):
        data = lognormal_measurement()
        stocked.add_measurement(lot, data, by="ana")
        stocked.add_protein(lot, 5.0, by="ana")
        stocked.add_markers(
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
        stocked.add_safety(lot, {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by="ana")
    assert stocked.evaluate("OLD").decision == "conforms"
    with pytest.raises(StoreError, match=r"expired on .*cannot be released"):
        stocked.approve("OLD", by="qa-lead")
    assert stocked.lot_info("OLD")["approved_by"] is None
    assert stocked.approve("NEW", by="qa-lead").decision == "conforms"


def _signed_lots(stocked, tmp_path):
    raw = tmp_path / "L-OK.json"
    record = lognormal_measurement(particles_per_ml=2.1e10)
    record.provenance.inputs = {"video-1.avi": "1" * 64, "video-2.avi": "2" * 64}
    record.dilution_factor = 50.0
    record.concentration = Concentration(
        **(record.concentration.model_dump() | {"dilution_factor": 50.0})
    )
    record.per_video = []
    record.source.files = ["video-1.avi", "video-2.avi"]
    record.tracks.count = 812
    record.settings = {
        "calibration": {
            "depth_um": 9.8,
            "pixel_size_um": 0.166,
            "fps": 30.0,
            "bead_diameter_nm": 100.0,
            "known_concentration_per_ml": 3e8,
        }
    }
    record.save(raw)
    stocked.add_lot("L-OK", "EXO-1", by="ana")
    stocked.add_measurement("L-OK", record, by="ana", original_file=raw)
    stocked.add_protein("L-OK", 5.0, by="ana")
    stocked.add_markers(
        "L-OK",
        {
            "CD9": "present",
            "CD63": "present",
            "CD81": "present",
            "TSG101": "present",
            "calnexin": "absent",
        },
        by="ana",
    )
    stocked.add_safety("L-OK", {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by="ana")
    fill_lot(stocked, "L-LOW", particles_per_ml=1.0e10)
    stocked.approve("L-OK", by="bob", comment="released for the phase I study")
    stocked.approve("L-LOW", by="bob", comment="count below claim; investigation QI-17")
    return record


def test_certificate_says_what_the_decision_rests_on(stocked, tmp_path):
    """Case 7: measurement basis, every raw input's SHA-256, decision wording, comment."""
    from exocheck.report import render_html

    record = _signed_lots(stocked, tmp_path)
    html = render_html(stocked, "L-OK")
    for expected in (
        "entered by ana",
        "2 video(s) · 812 tracks",
        "1:50",
        "22.0 °C",
        "bead standard 100 nm",
        "Released by",
        "released for the phase I study",
        "1" * 64,
        "2" * 64,
        stocked.lot_info("L-OK")["attachments"][0]["sha256"],
    ):
        assert expected in html, expected
    assert record.provenance.exocheck_version in html
    assert "Approved by" not in html and 'class="watermark"' not in html
    rejected = render_html(stocked, "L-LOW")
    assert "Rejected by" in rejected and "DOES-NOT-CONFORM — REJECTED" in rejected
    assert "Released by" not in rejected and "count below claim; investigation QI-17" in rejected


def test_draft_and_uncalibrated_certificates_say_so(stocked):
    """Case 7: an unsigned lot is a draft with a watermark; an uncalibrated concentration is
    stated prominently; a chart of two lots draws no ±3σ limits and states no Cpk."""
    from exocheck.report import render_html

    fill_lot(stocked, "L-A")
    stocked.add_lot("L-B", "EXO-1", by="ana")
    stocked.add_measurement("L-B", _uncalibrated(), by="ana")
    html = render_html(stocked, "L-B")
    # L-B has only its particle measurement: the draft says it awaits data, naming what
    assert 'class="watermark">DRAFT' in html and "DRAFT — AWAITING DATA (missing: " in html
    assert "Endotoxin" in html.split("DRAFT — AWAITING DATA")[1].split(")")[0]
    assert "UNCALIBRATED — PARTICLE CONCENTRATION NOT USABLE FOR RELEASE" in html
    assert "Released by" not in html and "Rejected by" not in html
    assert "2 lots so far" in html and "Cpk" not in html and "limits ±3σ" not in html


def test_control_chart_limits_from_enough_lots_never_below_zero(stocked):
    """Case 7: from MIN_LOTS_FOR_LIMITS lots on, limits and Cpk are stated; a spread that would
    put the lower limit below zero is clipped at zero."""
    from exocheck.qc.comparability import MIN_LOTS_FOR_LIMITS
    from exocheck.report.coa import coa_context

    counts = [2.0e10, 0.4e10, 3.6e10, 0.5e10, 3.5e10, 0.6e10, 3.4e10, 2e10, 0.5e10, 3.5e10]
    assert len(counts) == MIN_LOTS_FOR_LIMITS
    for i, c in enumerate(counts):
        fill_lot(stocked, f"L{i:02d}", particles_per_ml=c)
    chart = coa_context(stocked, "L09")["chart"]
    assert chart["limits"] and chart["capability"] is not None
    assert chart["chart"].center - 3 * chart["chart"].sigma < 0 and chart["chart"].lcl == 0.0


def test_purity_class_is_worded_as_a_class_not_a_result():
    """Case 7: "low purity" beside a pass reads as a contradiction: the detail names the
    classification it comes from."""
    from qc_factories import SPEC_YAML

    from exocheck.qc.lotdata import LotData, ProteinAssay
    from exocheck.qc.specification import parse_specification

    data = LotData(
        lot="L",
        particles_per_unit_claim=2e10,
        fill_volume_ml=1.0,
        nta=lognormal_measurement(particles_per_ml=1e11),
        protein=ProteinAssay(ug_per_ml=20.0),
    )
    purity = next(
        c for c in evaluate(parse_specification(SPEC_YAML), data).criteria if c.kind == "purity"
    )
    assert purity.result == "pass" and purity.detail == "Webber & Clayton class: low purity"


@pytest.mark.parametrize(
    ("particles_per_ml", "message"),
    [
        (float("inf"), "not a finite number"),
        (8e20, "times the volume"),
    ],
)
def test_store_refuses_impossible_concentrations(stocked, particles_per_ml, message):
    """Case 4: a record from any source with an infinite concentration, or more particles than
    fit in a millilitre, is refused with one line; nothing is written."""
    stocked.add_lot("L1", "EXO-1", by="ana")
    events = len(stocked.history())
    with pytest.raises(StoreError, match=message):
        stocked.add_measurement(
            "L1", lognormal_measurement(particles_per_ml=particles_per_ml), by="ana"
        )
    assert len(stocked.history()) == events and stocked.lot_data("L1").nta is None


def test_frame_folder_has_a_checksum(tmp_path):
    """Case 7: a frame-folder analysis had no hash on the certificate; its checksum covers every
    frame's name and content in reading order."""
    from exocheck.nta.checks import sha256_input

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.png").write_bytes(bytes([i]) * 10)
    (folder / "notes.txt").write_text("not a frame")
    first = sha256_input(folder)
    assert len(first) == 64
    (folder / "notes.txt").write_text("still not a frame")
    assert sha256_input(folder) == first
    (folder / "f1.png").write_bytes(b"changed")
    assert sha256_input(folder) != first
