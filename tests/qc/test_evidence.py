"""The evidence's own warnings (:mod:`exocheck.qc.evidence`) and the criteria they undermine."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, lognormal_measurement

from exocheck.qc.evidence import capture_caveat, record_caveats
from exocheck.qc.lotdata import LotData
from exocheck.qc.release import evaluate
from exocheck.qc.specification import parse_specification
from exocheck.records import VideoSummary

MARKERS = {"CD9": "present", "CD63": "present", "CD81": "present", "TSG101": "present"}


def _lot(record, **extra) -> LotData:
    from exocheck.qc.lotdata import ProteinAssay

    return LotData(
        lot="L1",
        product="EXO-1",
        particles_per_unit_claim=2e10,
        fill_volume_ml=1.0,
        nta=record,
        nta_all=[record],
        protein=ProteinAssay(ug_per_ml=5.0),
        markers=MARKERS | {"calnexin": "absent"},
        safety={"endotoxin_eu_per_ml": 0.05, "sterility": "absent"},
        **extra,
    )


def test_a_clean_record_has_no_caveat():
    record = lognormal_measurement(particles_per_ml=2.1e10)
    assert record_caveats(record) == []
    result = evaluate(parse_specification(SPEC_YAML), _lot(record))
    assert result.decision == "conforms" and result.caveats == []


def test_vendor_unreliable_flags_undermine_size_and_concentration():
    record = lognormal_measurement(particles_per_ml=2.1e10)
    record.instrument_summary = {"flags": {"Validity": ["Valid", "Unreliable", "Unreliable"]}}
    (caveat,) = record_caveats(record)
    assert caveat.code == "vendor-unreliable" and "2 of 3 videos" in caveat.detail
    result = evaluate(parse_specification(SPEC_YAML), _lot(record))
    by_name = {c.name: c.result for c in result.criteria}
    assert by_name["Size mode"] == "inconclusive" and by_name["Particles per vial"] == (
        "inconclusive"
    )
    assert by_name["Endotoxin"] == "pass"  # not computed from the particle measurement
    accepted = _lot(record, accepted_deviations={"vendor-unreliable": "Rita, 2026-12-08: ok"})
    assert evaluate(parse_specification(SPEC_YAML), accepted).decision == "conforms"


def test_a_flag_on_the_concentration_measurement_leaves_the_sizes_alone():
    record = lognormal_measurement(particles_per_ml=2.1e10)
    flags = {"Validity of concentration measurement": ["Unreliable", "Valid"]}
    record.instrument_summary = {"flags": flags}
    (caveat,) = record_caveats(record)
    assert caveat.undermines == {"concentration"}
    result = evaluate(parse_specification(SPEC_YAML), _lot(record))
    by_name = {c.name: c.result for c in result.criteria}
    assert by_name["Size mode"] == "pass" and by_name["Particles per vial"] == "inconclusive"


def test_unsized_and_mixed_videos_are_named():
    record = lognormal_measurement()
    record.per_video = [VideoSummary(name="a", valid=False), VideoSummary(name="b")]
    record.warnings = ["mixed samples in one export: S1, S2"]
    codes = {c.code: c for c in record_caveats(record)}
    assert set(codes) == {"unsized-videos", "mixed-samples"}
    assert codes["unsized-videos"].undermines == {"size"}


def test_capture_settings_other_than_the_specification_says():
    record = lognormal_measurement()  # 22.0 °C
    assert capture_caveat(record, {"temperature_c": [20, 26]}) is None
    hot = capture_caveat(record, {"temperature_c": [30, 40]})
    assert hot is not None and "temperature_c 22 (specified 30–40)" in hot.detail
    unknown = capture_caveat(record, {"camera_level": 14})
    assert unknown is not None and "not stated" in unknown.detail
    spec = parse_specification(SPEC_YAML + "capture:\n  temperature_c: [30, 40]\n")
    result = evaluate(spec, _lot(lognormal_measurement(particles_per_ml=2.1e10)))
    assert result.decision == "inconclusive"
    assert [c.code for c in result.caveats] == ["capture-settings"]


def test_the_certificate_drops_its_calibration_warning_for_any_accepted_calibration_deviation():
    """Every calibration caveat (uncalibrated, other optics, expired), once accepted as a
    deviation, is listed with the accepted deviations and not again as the measurement's own
    warning: the certificate asks the evidence module which codes are about calibration."""
    from exocheck.qc.evidence import CALIBRATION_CODES
    from exocheck.report.coa import _basis

    record = lognormal_measurement(particles_per_ml=2.1e10)
    record.concentration.calibrated = False
    assert _basis({}, _lot(record))["caveat"]  # uncalibrated: warned
    for code in CALIBRATION_CODES:
        accepted = _lot(record, accepted_deviations={code: "Rita, 2026-12-08: ok"})
        assert _basis({}, accepted)["caveat"] is None, code
