"""Release decisions: criterion results against hand-computed and analytic values."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from exocheck.qc.lotdata import LotData, ProteinAssay
from exocheck.qc.release import (
    _judge,
    evaluate,
    misev_completeness,
    purity_class,
    size_fraction,
)
from exocheck.qc.specification import load_specification, parse_specification
from exocheck.records import Interval

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import lognormal_measurement

SPEC = load_specification(Path(__file__).parents[2] / "examples/specs/msc-ev-release-v1.yaml")
MARKERS = {
    "CD9": "present",
    "CD63": "present",
    "CD81": "present",
    "TSG101": "present",
    "calnexin": "absent",
    "GM130": "absent",
    "ApoA1": "absent",
}
SAFETY = {"endotoxin_eu_per_ml": 0.05, "sterility": "absent", "mycoplasma": "absent"}


def lot(particles_per_ml=1e11, **changes) -> LotData:
    base = dict(
        lot="L",
        particles_per_unit_claim=1e11,
        fill_volume_ml=1.0,
        nta=lognormal_measurement(particles_per_ml=particles_per_ml),
        protein=ProteinAssay(ug_per_ml=20.0),
        markers=MARKERS,
        safety=SAFETY,
    )
    return LotData(**(base | changes))


def test_judge_pass_fail_inconclusive():
    assert _judge(100, (95, 105), 50, 200) == "pass"
    assert _judge(100, (40, 105), 50, 200) == "inconclusive"  # straddles the lower limit
    assert _judge(45, (40, 55), 50, 200) == "inconclusive"  # point out, interval reaches in
    assert _judge(45, (40, 48), 50, 200) == "fail"
    assert _judge(0.25, None, None, 0.25, strict_high=True) == "fail"  # "< 0.25"
    assert _judge(0.25, None, None, 0.25) == "pass"  # "≤ 0.25"


def test_conforming_lot():
    result = evaluate(SPEC, lot())
    assert result.decision == "conforms", [(c.name, c.result) for c in result.criteria]
    claim = next(c for c in result.criteria if c.kind == "label_claim")
    assert claim.value == pytest.approx(1e11)
    assert claim.interval == pytest.approx((0.92e11, 1.08e11))


def test_short_lot_does_not_conform_and_borderline_is_inconclusive():
    short = evaluate(SPEC, lot(6e10))  # 60 % of the claim, interval 55–65 %
    assert short.decision == "does-not-conform"
    assert [c.name for c in short.criteria if c.result == "fail"] == [
        "Particles per vial vs. label claim"
    ]
    border = evaluate(SPEC, lot(8.2e10))  # interval 75–89 % straddles 80 %
    claim = next(c for c in border.criteria if c.kind == "label_claim")
    assert claim.result == "inconclusive" and border.decision == "inconclusive"


def test_missing_data_makes_the_lot_incomplete_but_a_failure_wins():
    result = evaluate(SPEC, lot(safety={}))
    missing = {c.name for c in result.criteria if c.result == "missing"}
    assert missing == {"Endotoxin", "Sterility", "Mycoplasma"}
    assert result.decision == "incomplete"
    assert evaluate(SPEC, lot(6e10, safety={})).decision == "does-not-conform"
    with_calnexin = evaluate(SPEC, lot(markers=MARKERS | {"calnexin": "present"}))
    assert next(c for c in with_calnexin.criteria if c.name == "Non-EV markers").result == "fail"


def test_size_fraction_matches_the_lognormal_cdf():
    data = lot()
    sigma = math.log(1.45)

    def cdf(d):
        return 0.5 * (1 + math.erf(math.log(d / 115.0) / (sigma * math.sqrt(2))))

    # 50 and 400 nm are bin edges of the 2-nm grid: the binned fraction equals the CDF up to the
    # renormalisation over 20–1000 nm (mass outside that range: 1.3e-6)
    assert size_fraction(data, 50, 400) == pytest.approx(cdf(400) - cdf(50), abs=5e-6)
    # 75 and 151 nm lie mid-bin: a uniform density within a 2-nm bin holding ~2 % of the
    # particles misplaces a small part of that bin's mass at each end
    assert size_fraction(data, 75, 151) == pytest.approx(cdf(151) - cdf(75), abs=3e-4)


def test_purity_classes_of_webber_and_clayton():
    assert purity_class(3e10) == "high purity"
    assert purity_class(2e10) == "low purity"
    assert purity_class(1e9) == "impure"
    assert purity_class(1.7e9) == "between low purity and impure"
    result = evaluate(SPEC, lot(protein=ProteinAssay(ug_per_ml=20.0, sd_ug_per_ml=1.0)))
    purity = next(c for c in result.criteria if c.kind == "purity")
    assert purity.value == pytest.approx(1e11 / 20.0)  # 5e9 particles/µg
    assert purity.detail == "Webber & Clayton class: low purity"
    # interval: concentration ±8 %, protein ±1.96 µg/mL
    assert purity.interval == pytest.approx((0.92e11 / 21.96, 1.08e11 / 18.04))


def test_misev_completeness():
    assert misev_completeness(lot()) == (1.0, [])
    score, unmet = misev_completeness(
        lot(protein=None, markers={"CD9": "present", "CD63": "present"})
    )
    assert score == 0.0
    assert len(unmet) == 4
    score, unmet = misev_completeness(
        lot(markers={"CD9": "present", "CD63": "present", "CD81": "present", "calnexin": "absent"})
    )
    assert score == 0.75 and unmet == ["a transmembrane and a cytosolic marker"]


def test_quantity_uncertainty_from_the_record():
    spec = parse_specification("""
name: d50
version: 1
criteria:
  - {name: D50, kind: range, quantity: size.d50_nm, min: 112}
""")
    data = lot()
    data.nta.size.ci["d50_nm"] = Interval(low=110.0, high=120.0)
    assert evaluate(spec, data).criteria[0].result == "inconclusive"
    data.nta.size.ci.pop("d50_nm")
    assert evaluate(spec, data).criteria[0].result == "pass"


def test_summary_is_the_cli_contract():
    summary = evaluate(SPEC, lot()).summary()
    assert set(summary) == {"lot", "decision", "criteria"}
    assert all(set(c) == {"name", "result", "value", "limit"} for c in summary["criteria"])
    assert len(summary["criteria"]) == len(SPEC.criteria)
