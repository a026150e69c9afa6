"""ICH Q1E conformance: LeBlond 2011 data with the published answers (see data/README.md)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from exocheck.qc.stability import estimate_shelf_life

DATA = Path(__file__).parent / "data"


def signif(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits - 1}e}")


def agree6(value: float, published: float) -> None:
    """Equal to 6 significant digits, and within 1e-6 relative (the published values carry
    R uniroot's default tolerance in their 7th digit)."""
    assert signif(value) == signif(published)
    assert value == pytest.approx(published, rel=1e-6)


def run(file: str, batches: list[str], response: str, **limits):
    data = pd.read_csv(DATA / file)
    data = data[data["Batch"].isin(batches)]
    return estimate_shelf_life(
        data, time_col="Month", response_col=response, batch_col="Batch", **limits
    )


def test_cics_exp1_b2_b5_b7():
    r = run("exp1.csv", ["b2", "b5", "b7"], "Potency", lower_limit=95)
    assert r.model == "cics"
    agree6(r.shelf_life, 25.9957631369)
    assert r.by_side == {"lower": r.shelf_life, "upper": None}
    line = r.line()
    agree6(line.intercept, 100.566878981)
    agree6(line.slope, -0.192993630573)
    agree6(r.poolability.f_intercepts, 0.435993484727)
    agree6(r.poolability.f_slopes, 0.228684731019)
    assert r.worst_batch is None  # one pooled line: no single batch governs


def test_dics_exp1_b3_b4_b5():
    r = run("exp1.csv", ["b3", "b4", "b5"], "Potency", lower_limit=95)
    assert r.model == "dics"
    agree6(r.shelf_life, 23.3972651235)
    for batch, icpt in zip(
        ["b3", "b4", "b5"], [102.175653109, 104.255189423, 100.820021871], strict=True
    ):
        agree6(r.line(batch).intercept, icpt)
        agree6(r.line(batch).slope, -0.213120866465)
    agree6(r.poolability.f_intercepts, 21.7380213596)
    agree6(r.poolability.f_slopes, 0.183108926252)
    assert r.worst_batch == "b5"  # lowest intercept, common slope


def test_dids_exp1_b4_b5_b8():
    r = run("exp1.csv", ["b4", "b5", "b8"], "Potency", lower_limit=95)
    assert r.model == "dids"
    agree6(r.shelf_life, 15.8448655130)
    # JMP 12.0.1 solves the crossing to more digits than expirest: 15.844877978.
    assert r.shelf_life == pytest.approx(15.844877978, rel=1e-10)
    assert r.worst_batch == "b8"
    slopes = [-0.196151337247, -0.208608547839, -0.330208333333]
    icpts = [104.070645793, 100.781872268, 101.259375000]
    for batch, slope, icpt in zip(["b4", "b5", "b8"], slopes, icpts, strict=True):
        agree6(r.line(batch).slope, slope)
        agree6(r.line(batch).intercept, icpt)
    agree6(r.poolability.f_intercepts, 72.1242158003)
    agree6(r.poolability.f_slopes, 1.95541944320)
    assert r.poolability.p_slopes < 0.25


def test_dids_exp2_upper_limit():
    r = run("exp2.csv", ["b4", "b5", "b8"], "Related", upper_limit=0.3)
    assert r.model == "dids"
    agree6(r.shelf_life, 15.8448655130)
    assert r.by_side == {"lower": None, "upper": r.shelf_life}
    assert r.worst_batch == "b8"
    for batch, icpt, slope in zip(
        ["b4", "b5", "b8"],
        [0.027880626223, 0.126543831957, 0.112218750000],
        [0.005884540117, 0.006258256435, 0.009906250000],
        strict=True,
    ):
        agree6(r.line(batch).intercept, icpt)
        agree6(r.line(batch).slope, slope)


def test_dids_uses_separate_fits_not_pooled_mse():
    """The published dids value is reached with each batch's own residual variance; the full
    model's pooled variance gives a different crossing (LeBlond 2011 Table IX: 15.6)."""
    r = run("exp1.csv", ["b4", "b5", "b8"], "Potency", lower_limit=95)
    b8 = r.line("b8")
    assert b8.df_resid == 3  # 5 results of batch b8, two parameters
    data = pd.read_csv(DATA / "exp1.csv")
    sub = data[data["Batch"] == "b8"]
    resid = sub["Potency"] - (b8.intercept + b8.slope * sub["Month"])
    assert b8.var_slope == pytest.approx(
        (resid**2).sum() / 3 / ((sub["Month"] - sub["Month"].mean()) ** 2).sum(), rel=1e-12
    )


def _analytic_crossing(line, limit, quantile):
    """Closed form: (a + b t - L)^2 = q^2 (v_a + 2 t c + t^2 v_b), smallest admissible root."""
    q = stats.t.ppf(quantile, line.df_resid)
    a, b = line.intercept - limit, line.slope
    qa = b * b - q * q * line.var_slope
    qb = 2 * a * b - 2 * q * q * line.cov_intercept_slope
    qc = a * a - q * q * line.var_intercept
    roots = sorted(np.roots([qa, qb, qc]).real)
    # the lower confidence limit meets the limit where a + b t = +q se (mean above limit)
    return min(t for t in roots if t >= 0 and a + b * t >= 0)


@pytest.mark.parametrize(
    ("batches", "batch"), [(["b2", "b5", "b7"], None), (["b4", "b5", "b8"], "b8")]
)
def test_root_is_solved_to_full_precision(batches, batch):
    r = run("exp1.csv", batches, "Potency", lower_limit=95)
    exact = _analytic_crossing(r.line(batch), 95.0, 0.95)
    assert math.isclose(r.shelf_life, exact, rel_tol=1e-11)
