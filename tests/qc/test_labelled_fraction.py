"""The ``labelled_fraction`` criterion: the share of particles that carry a marker, judged with its
95 % interval; size ranges from the record's classes; labelled and fluorescence-mode records never
taken for the lot's particle measurement."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from exocheck.errors import AnalysisError, SpecificationError
from exocheck.qc.comparability import particles_per_unit
from exocheck.qc.lotdata import LotData, ProteinAssay, is_particle_measurement
from exocheck.qc.release import evaluate, labelled_fraction
from exocheck.qc.specification import LabelledFractionCriterion, parse_specification
from exocheck.records import Channel, Interval, LabelledClass, LabelledFraction

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import LABELLED_CLASSES, labelled_measurement, lognormal_measurement

HEAD = "schema: exocheck.spec/1\nname: s\nversion: 1\ncriteria:\n"


def spec(*criteria: str):
    return parse_specification(HEAD + "".join(f"  - {c}\n" for c in criteria))


def one(criterion: str, data: LotData):
    result = evaluate(spec(criterion), data)
    assert len(result.criteria) == 1
    return result.criteria[0], result.decision


def lot(*records, nta=None) -> LotData:
    return LotData(lot="L", nta=nta, nta_all=[*([nta] if nta else []), *records])


# ---- specification ---------------------------------------------------------------------------
def test_criterion_parses_with_and_without_range():
    parsed = spec(
        "{name: CD63+, kind: labelled_fraction, marker: ' CD63 ', min_percent: 10}",
        "{name: CD63+ small, kind: labelled_fraction, marker: CD63, min_percent: 2.5,"
        " size_range_nm: [50, 200]}",
    )
    first, second = parsed.criteria
    assert isinstance(first, LabelledFractionCriterion)
    assert first.marker == "CD63" and first.min_percent == 10 and first.size_range_nm is None
    assert second.size_range_nm == (50, 200)


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        (
            "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 0}",
            r"line 5 key 'criteria\[0\]\.min_percent': Input should be greater than 0",
        ),
        (
            "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 120}",
            r"line 5 key 'criteria\[0\]\.min_percent': Input should be less than or equal to 100",
        ),
        (
            "{name: X, kind: labelled_fraction, min_percent: 10}",
            r"line 5 key 'criteria\[0\]\.marker': Field required",
        ),
        (
            "{name: X, kind: labelled_fraction, marker: '  ', min_percent: 10}",
            r"key 'criteria\[0\]\.marker': marker must name what the label marks",
        ),
        (
            "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 10,"
            " size_range_nm: [200, 50]}",
            r"line 5 key 'criteria\[0\]': size_range_nm must be \[low, high\]",
        ),
        (
            "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 10,"
            " size_range_nm: [50]}",
            r"key 'criteria\[0\]\.size_range_nm",
        ),
        (
            "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 10, min_fraction: 0.1}",
            r"line 5 key 'criteria\[0\]\.min_fraction': unknown key",
        ),
        (
            "{name: X, kind: labelled_fractions, marker: CD63, min_percent: 10}",
            r"line 5 key 'criteria\[0\]\.kind': unknown criterion kind \(use one of .*"
            r"labelled_fraction\)",
        ),
    ],
)
def test_specification_mistakes_are_one_line(criterion, expected):
    with pytest.raises(SpecificationError, match=expected) as info:
        parse_specification(HEAD + f"  - {criterion}\n", source="s.yaml")
    assert "\n" not in str(info.value)


# ---- the record's own range: overall fraction and interval (6.4 %, 5.6-7.3 %) ----------------
@pytest.mark.parametrize(
    ("min_percent", "result", "decision"),
    [
        (5, "pass", "conforms"),  # whole interval above 5 %
        (5.6, "pass", "conforms"),  # "at least": the lower bound on the limit passes
        (6, "inconclusive", "inconclusive"),  # 5.6-7.3 % straddles 6 %
        (7, "inconclusive", "inconclusive"),  # the point (6.4 %) is below, the interval not
        (8, "fail", "does-not-conform"),  # whole interval below 8 %
    ],
)
def test_overall_fraction_is_judged_with_its_interval(min_percent, result, decision):
    c, d = one(
        f"{{name: CD63+, kind: labelled_fraction, marker: CD63, min_percent: {min_percent}}}",
        lot(labelled_measurement()),
    )
    assert (c.result, d) == (result, decision)
    assert c.value == pytest.approx(0.064) and c.interval == pytest.approx((0.056, 0.073))
    assert c.display_value == "6.4 % (5.6–7.3 %)"
    assert c.limit == f"≥ {min_percent:g} % CD63-labelled"
    assert c.detail.startswith("CD63-labelled, 50–1000 nm; controls subtracted: ")
    assert "label-only 1.20e+08/mL" in c.detail and "unstained 3.00e+07/mL" in c.detail


def test_range_equal_to_the_records_uses_its_overall_value():
    c, _ = one(
        "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 5,"
        " size_range_nm: [50, 1000]}",
        lot(labelled_measurement()),
    )
    assert c.value == pytest.approx(0.064) and c.interval == pytest.approx((0.056, 0.073))
    assert "combined" not in c.detail


def test_marker_is_matched_case_insensitively_and_a_mismatch_is_missing():
    c, _ = one(
        "{name: X, kind: labelled_fraction, marker: cd63, min_percent: 5}",
        lot(labelled_measurement(marker="CD63")),
    )
    assert c.result == "pass"
    c, d = one(
        "{name: X, kind: labelled_fraction, marker: CD81, min_percent: 5}",
        lot(labelled_measurement(marker="CD63"), labelled_measurement(marker=None)),
    )
    assert (c.result, d, c.value) == ("missing", "incomplete", None)
    assert c.detail == "no labelled-fraction record for CD81 (the lot has: CD63, no marker named)"


def test_no_labelled_record_is_missing():
    c, d = one(
        "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 5}",
        lot(nta=lognormal_measurement()),
    )
    assert (c.result, d, c.display_value) == ("missing", "incomplete", "—")
    assert c.detail == "no labelled-fraction record for CD63"


def test_newest_record_of_the_marker_decides():
    old = labelled_measurement(fraction=0.02, ci=(0.015, 0.026))
    new = labelled_measurement()
    c, _ = one("{name: X, kind: labelled_fraction, marker: CD63, min_percent: 5}", lot(old, new))
    assert c.result == "pass" and c.value == pytest.approx(0.064)
    assert "newest of 2 records" in c.detail


def test_controls_line_names_what_was_subtracted_and_what_was_not():
    none = labelled_measurement(subtracted_per_ml={})
    c, _ = one("{name: X, kind: labelled_fraction, marker: CD63, min_percent: 5}", lot(none))
    assert "no control subtracted; also recorded: label-only, unstained" in c.detail
    some = labelled_measurement(subtracted_per_ml={"control_label_only": 5e7})
    c, _ = one("{name: X, kind: labelled_fraction, marker: CD63, min_percent: 5}", lot(some))
    assert "controls subtracted: label-only 5.00e+07/mL; also recorded: unstained" in c.detail


# ---- a size range from the record's classes ----------------------------------------------------
def test_size_range_combines_the_classes_it_covers():
    """100-400 nm = classes 100-200 (3e8 of 3e9, CI 8-12.5 %) and 200-400 (2e8 of 8e8,
    CI 20-31 %): f = 5e8 / 3.8e9; var(f) = sum((t_i/T)^2 sd_i^2) with sd_i = CI width / 3.92;
    interval f * exp(+-1.96 sd_f / f), worked by hand below."""
    f = 5e8 / 3.8e9
    sd = math.hypot((3 / 3.8) * (0.125 - 0.08) / 3.919928, (0.8 / 3.8) * (0.31 - 0.20) / 3.919928)
    low, high = f * math.exp(-1.959964 * sd / f), f * math.exp(1.959964 * sd / f)
    assert (low, high) == pytest.approx((0.11200, 0.15459), abs=1e-5)  # the numbers by hand
    c, d = one(
        "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 10,"
        " size_range_nm: [100, 400]}",
        lot(labelled_measurement()),
    )
    assert (c.result, d) == ("pass", "conforms")
    assert c.value == pytest.approx(f, rel=1e-12)
    assert c.interval == pytest.approx((low, high), rel=1e-6)
    assert c.display_value == "13.2 % (11.2–15.5 %)"
    assert c.limit == "≥ 10 % CD63-labelled, 100–400 nm"
    assert "100–400 nm (2 size classes combined; approximate interval)" in c.detail
    c, _ = one(
        "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 12,"
        " size_range_nm: [100, 400]}",
        lot(labelled_measurement()),
    )
    assert c.result == "inconclusive"  # 11.2-15.5 % straddles 12 %


def test_one_class_range_is_that_class():
    estimate = labelled_fraction(labelled_measurement().labelled, (50, 100))
    assert estimate.fraction == pytest.approx(0.01) and estimate.classes == 1
    # one class: the same standard deviation, now on the log scale (asymmetric, positive)
    sd = (0.015 - 0.006) / 3.919928
    assert estimate.interval == pytest.approx(
        (0.01 * math.exp(-1.959964 * sd / 0.01), 0.01 * math.exp(1.959964 * sd / 0.01)), rel=1e-6
    )


@pytest.mark.parametrize(
    ("size_range", "message"),
    [
        (
            "[60, 200]",
            "not evaluable: the record's size classes (edges 50, 100, 200, 400, 1000 nm) do not "
            "cover 60–200 nm exactly; give a range on class edges",
        ),
        ("[100, 300]", "do not cover 100–300 nm exactly"),
        ("[30, 200]", "not evaluable: 30–200 nm reaches outside the record's range 50–1000 nm"),
        ("[400, 1200]", "reaches outside the record's range"),
    ],
)
def test_range_not_covered_by_the_classes_is_not_evaluable(size_range, message):
    c, d = one(
        "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 5,"
        f" size_range_nm: {size_range}}}",
        lot(labelled_measurement()),
    )
    assert (c.result, d, c.value) == ("missing", "incomplete", None)
    assert message in c.detail and "\n" not in c.detail


def test_gaps_and_missing_classes_are_not_evaluable():
    gap = labelled_measurement(classes=[k for k in LABELLED_CLASSES if k[0] != 200])
    with pytest.raises(AnalysisError, match="do not cover 100–1000 nm exactly"):
        labelled_fraction(gap.labelled, (100, 1000))
    bare = labelled_measurement(classes=())
    with pytest.raises(AnalysisError, match="the record has no size classes; only its own range"):
        labelled_fraction(bare.labelled, (100, 200))
    assert labelled_fraction(bare.labelled, None).fraction == pytest.approx(0.064)


def test_class_without_interval_lets_the_value_decide_and_says_so():
    record = labelled_measurement()
    classes = [
        c.model_copy(update={"ci": None}) if c.low_nm == 200 else c for c in record.labelled.classes
    ]
    record.labelled.classes = classes
    c, _ = one(
        "{name: X, kind: labelled_fraction, marker: CD63, min_percent: 10,"
        " size_range_nm: [100, 400]}",
        lot(record),
    )
    assert c.result == "pass" and c.interval is None
    assert "class 200–400 nm has no interval: the value alone decides" in c.detail


def test_combined_interval_covers_the_truth_of_independent_classes():
    """The delta-method interval over classes whose labelled counts are independent Poisson
    counts covers the true combined fraction of 100-1000 nm in about 95 % of 2000 replicates
    (binomial SD of the coverage 0.5 %: 93-97 % is a 4-SD band)."""
    rng = np.random.default_rng(7)
    low_nm, high_nm = (50.0, 100.0, 200.0, 400.0), (100.0, 200.0, 400.0, 1000.0)
    total = np.array([6e9, 3e9, 8e8, 2e8])
    truth_f = np.array([0.01, 0.10, 0.25, 0.40])
    per_track = np.array([1.5e5, 1e6, 1e6, 4e5])  # labelled particles/mL per fluorescent track
    mean_tracks = truth_f * total / per_track  # 400, 300, 200, 200 tracks
    truth = float(np.sum((truth_f * total)[1:]) / total[1:].sum())
    covered = 0
    reps = 2000
    for _ in range(reps):
        n = rng.poisson(mean_tracks)
        f = n * per_track / total
        half = 1.959964 * np.sqrt(n) * per_track / total  # Poisson normal interval per class
        classes = [
            LabelledClass(
                low_nm=lo,
                high_nm=hi,
                total_per_ml=float(t),
                labelled_per_ml=float(fi * t),
                fraction=float(fi),
                ci=Interval(low=float(fi - h), high=float(fi + h)),
            )
            for lo, hi, t, fi, h in zip(low_nm, high_nm, total, f, half, strict=True)
        ]
        overall = float(np.sum(f * total) / total.sum())
        record = LabelledFraction(
            marker="CD63",
            low_nm=50,
            high_nm=1000,
            fraction=overall,
            ci=Interval(low=overall, high=overall),
            labelled_per_ml=overall * float(total.sum()),
            total_per_ml=float(total.sum()),
            classes=classes,
        )
        estimate = labelled_fraction(record, (100, 1000))
        assert estimate.classes == 3
        covered += estimate.interval[0] <= truth <= estimate.interval[1]
    assert 0.93 <= covered / reps <= 0.97, covered / reps


# ---- labelled and fluorescence records are not the lot's particle measurement ------------------
SIZE_AND_COUNT = (
    "{name: Mode, kind: range, quantity: size.mode_nm, min: 50, max: 200}",
    "{name: Conc, kind: range, quantity: concentration.particles_per_ml, min: 1.0e+9}",
    "{name: Window, kind: size_fraction, window_nm: [50, 400], min_fraction: 0.5}",
    "{name: Claim, kind: label_claim, tolerance_percent: 20}",
    "{name: Purity, kind: purity, min_particles_per_ug: 1.0e+8}",
)


def test_particle_measurement_excludes_labelled_and_fluorescence_records():
    assert is_particle_measurement(lognormal_measurement())
    assert not is_particle_measurement(labelled_measurement(mode=None))
    assert not is_particle_measurement(labelled_measurement(mode="scatter"))
    fluorescence = lognormal_measurement().model_copy(
        update={"channel": Channel(mode="fluorescence", filter_wavelength_nm=500)}
    )
    assert not is_particle_measurement(fluorescence)
    scatter = lognormal_measurement().model_copy(update={"channel": Channel(mode="scatter")})
    assert is_particle_measurement(scatter)
    for record, words in ((labelled_measurement(), "labelled-fraction"), (fluorescence, "fluor")):
        with pytest.raises(ValidationError, match=f"nta: a {words}"):
            LotData(lot="L", nta=record)


def test_size_and_count_criteria_are_missing_with_only_labelled_data():
    fluorescence = lognormal_measurement().model_copy(
        update={"channel": Channel(mode="fluorescence")}
    )
    data = LotData(
        lot="L",
        particles_per_unit_claim=1e9,
        fill_volume_ml=1.0,
        protein=ProteinAssay(ug_per_ml=1.0),
        nta_all=[labelled_measurement(), fluorescence],
    )
    result = evaluate(spec(*SIZE_AND_COUNT), data)
    assert [c.result for c in result.criteria] == ["missing"] * len(SIZE_AND_COUNT)
    assert particles_per_unit(data) is None
