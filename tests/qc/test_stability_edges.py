"""Shelf-life engine: statistical edge cases, limits, transforms and the ICH Q1E rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exocheck.errors import StabilityError
from exocheck.qc.ich_q1e import extrapolation_limit, supported_shelf_life
from exocheck.qc.stability import estimate_shelf_life

DATA = Path(__file__).parent / "data"
TIMES = [0, 3, 6, 9, 12, 18, 24]


def simulate(slopes, intercept=100.0, sd=0.5, seed=1, log=False, times=TIMES):
    rng = np.random.default_rng(seed)
    rows = []
    for i, slope in enumerate(slopes):
        for t in times:
            for _ in range(2):
                mean = intercept + slope * t
                y = math.exp(mean + rng.normal(0, sd)) if log else mean + rng.normal(0, sd)
                rows.append({"lot": f"L{i + 1}", "month": t, "y": y})
    return pd.DataFrame(rows)


def shelf(data, **kw):
    kw.setdefault("batch_col", "lot")
    return estimate_shelf_life(data, time_col="month", response_col="y", **kw)


def test_one_batch_only():
    r = shelf(simulate([-0.3]), lower_limit=90)
    assert r.model == "cics" and r.poolability is None
    assert r.worst_batch == "L1"
    assert any("one batch" in w for w in r.warnings)
    # a single regression line: its crossing solves the confidence-limit equation exactly
    line = r.line()
    assert float(line.bound(r.shelf_life, "lower", 0.95)) == pytest.approx(90, abs=1e-9)


def test_two_batches_warn():
    r = shelf(simulate([-0.3, -0.31]), lower_limit=90)
    assert any("at least three" in w for w in r.warnings)


def test_no_degradation_supported_is_capped():
    r = shelf(simulate([0.0, 0.0, 0.0]), lower_limit=90)
    # flat data: the lower confidence limit leaves 100 % only slowly, far beyond 24 months
    assert r.shelf_life is None or r.shelf_life > 48
    assert r.supported_shelf_life == 36  # min(2 X, X + 12 months), X = 24 months
    assert any("capped" in w for w in r.warnings)


def test_never_crossed_is_null_with_warning():
    data = pd.DataFrame({"month": [0, 6, 12, 24], "y": [100.0, 100.0, 100.0, 100.0]})
    r = estimate_shelf_life(data, time_col="month", response_col="y", lower_limit=90)
    assert r.shelf_life is None and r.by_side["lower"] is None
    assert r.summary()["shelf_life"] is None
    assert any("not met within 480 month" in w for w in r.warnings)
    assert r.supported_shelf_life == 36


def test_increasing_attribute_with_lower_limit():
    r = shelf(simulate([0.2, 0.25, 0.22]), lower_limit=95)
    assert r.shelf_life is None or r.shelf_life > 100
    assert any("increases with time" in w for w in r.warnings)


def test_increasing_attribute_with_upper_limit():
    r = shelf(simulate([0.2, 0.2, 0.2], intercept=1.0, sd=0.1), upper_limit=5.0)
    assert r.model in ("cics", "dics")
    assert r.by_side["lower"] is None
    line = r.line()
    mean_crossing = (5.0 - line.intercept) / line.slope
    assert 0 < r.shelf_life < mean_crossing  # the upper confidence limit crosses first
    assert r.shelf_life == pytest.approx(20, abs=2)  # true line meets 5.0 at 20 months


def test_limit_failed_at_time_zero():
    r = shelf(simulate([-0.3, -0.3, -0.3]), lower_limit=101)
    assert r.shelf_life == 0.0 and r.supported_shelf_life == 0.0
    assert any("already failed at time 0" in w for w in r.warnings)


@pytest.mark.parametrize(
    ("times", "message"), [([0, 12], "2 distinct time point"), ([0, 0, 0], "1 distinct")]
)
def test_too_few_time_points(times, message):
    data = simulate([-0.3, -0.3], times=times)
    with pytest.raises(StabilityError, match=message):
        shelf(data, lower_limit=90)


def test_bad_inputs_are_one_line_errors():
    data = simulate([-0.3])
    with pytest.raises(StabilityError, match=r"missing column.*Potency"):
        estimate_shelf_life(data, time_col="month", response_col="Potency", lower_limit=90)
    with pytest.raises(StabilityError, match="no acceptance limit"):
        shelf(data)
    with pytest.raises(StabilityError, match="not below"):
        shelf(data, lower_limit=90, upper_limit=80)
    bad = data.astype({"y": object})
    bad.loc[3, "y"] = "n/a"
    with pytest.raises(StabilityError, match=r"non-numeric value .*n/a"):
        shelf(bad, lower_limit=90)
    with pytest.raises(StabilityError, match="positive values"):
        shelf(data.assign(y=data["y"] - 100), lower_limit=1, transform="log")
    with pytest.raises(StabilityError, match="unknown storage"):
        shelf(data, lower_limit=90, storage="cellar")


def test_both_limits_use_two_sided_interval():
    data = simulate([-0.3, -0.3, -0.3])
    both = shelf(data, lower_limit=90, upper_limit=110)
    assert both.one_sided_quantile == pytest.approx(0.975)
    lower_only_975 = shelf(data, lower_limit=90, confidence=0.975)
    lower_only_95 = shelf(data, lower_limit=90)
    assert both.by_side["lower"] == pytest.approx(lower_only_975.shelf_life, rel=1e-12)
    assert both.by_side["lower"] < lower_only_95.shelf_life
    assert both.by_side["upper"] is None or both.by_side["upper"] > both.by_side["lower"]
    assert both.shelf_life == both.by_side["lower"]


def test_log_transform_equals_linear_fit_of_logs():
    data = simulate([-0.02, -0.022, -0.021], intercept=math.log(1e10), sd=0.03, log=True)
    r = shelf(data, lower_limit=5e9, transform="log")
    lin = shelf(data.assign(y=np.log(data["y"])), lower_limit=math.log(5e9))
    assert r.model == lin.model
    assert r.shelf_life == pytest.approx(lin.shelf_life, rel=1e-12)
    # reported in original units: the bound at the crossing equals the limit in particles
    line = r.line(r.worst_batch)
    crossing = r.to_original(line.bound(r.shelf_life, "lower", 0.95))
    assert float(crossing) == pytest.approx(5e9, rel=1e-9)
    assert r.lower_limit == 5e9


def test_worst_batch_governs_dids():
    r = shelf(simulate([-0.1, -0.5, -0.2], sd=0.2), lower_limit=90)
    assert r.model == "dids"
    assert r.worst_batch == "L2"
    assert r.shelf_life == min(v["lower"] for v in r.per_batch.values())


def test_frozen_storage_no_extrapolation():
    data = simulate([-0.05, -0.05, -0.05], sd=0.3)
    r = shelf(data, lower_limit=90, storage="frozen")
    assert r.shelf_life > 24
    assert r.supported_shelf_life == 24
    assert any("frozen" in w for w in r.warnings)


@pytest.mark.parametrize(
    ("storage", "accel", "inter", "unit", "x", "expected"),
    [
        ("room", "none", "none", "month", 24, 36),  # min(48, 36)
        ("room", "none", "none", "month", 6, 12),  # min(12, 18)
        ("room", "significant", "none", "month", 24, 30),  # min(36, 30)
        ("room", "significant", "significant", "month", 24, 24),
        ("refrigerated", "none", "none", "month", 24, 30),  # min(36, 30)
        ("refrigerated", "none", "none", "month", 8, 12),  # min(12, 14)
        ("refrigerated", "significant", "none", "month", 24, 24),
        ("frozen", "none", "none", "month", 24, 24),
        ("refrigerated", "none", "none", "day", 30, 45),  # min(45, 30 + 182.6 days)
        ("room", "none", "none", "day", 365.25, 730.5),  # 12 months in days: X + 12 months
        ("refrigerated", "none", "none", "hour", 48, 72),
    ],
)
def test_ich_q1e_extrapolation_limits(storage, accel, inter, unit, x, expected):
    cap, rule = extrapolation_limit(
        x, storage, time_unit=unit, accelerated_change=accel, intermediate_change=inter
    )
    assert cap == pytest.approx(expected, rel=1e-12)
    assert rule
    supported, _ = supported_shelf_life(
        None, x, storage, time_unit=unit, accelerated_change=accel, intermediate_change=inter
    )
    assert supported == pytest.approx(expected, rel=1e-12)
    # a statistical shelf life shorter than the cap is never extended
    assert supported_shelf_life(0.5 * x, x, storage, time_unit=unit)[0] == 0.5 * x


def test_conformance_case_supported_by_storage():
    data = pd.read_csv(DATA / "exp1.csv")
    data = data[data["Batch"].isin(["b2", "b5", "b7"])]
    kw = dict(time_col="Month", response_col="Potency", batch_col="Batch", lower_limit=95)
    room = estimate_shelf_life(data, **kw)
    fridge = estimate_shelf_life(data, storage="refrigerated", **kw)
    frozen = estimate_shelf_life(data, storage="frozen", **kw)
    assert room.shelf_life == fridge.shelf_life == frozen.shelf_life  # never capped
    assert room.supported_shelf_life == room.shelf_life  # 26.0 < 36
    assert fridge.supported_shelf_life == room.shelf_life  # 26.0 < 30
    assert frozen.supported_shelf_life == 24
