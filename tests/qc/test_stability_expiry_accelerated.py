"""Particles at expiry, accelerated (Arrhenius) and freeze–thaw estimates against known truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from exocheck.errors import StabilityError
from exocheck.qc.accelerated import (
    R_J_PER_MOL_K,
    arrhenius_fit,
    first_order_rates,
    freeze_thaw_loss,
)
from exocheck.qc.expiry import particles_at_expiry
from exocheck.qc.stability import estimate_shelf_life

HOURS = [0, 6, 12, 24, 48, 72]


def decay(k_per_h, n0=2e10, cv=0.05, seed=0, lots=("A",), reps=3, times=HOURS):
    rng = np.random.default_rng(seed)
    rows = [
        {"lot": lot, "hour": t, "count": n0 * math.exp(-k_per_h * t + rng.normal(0, cv))}
        for lot in lots
        for t in times
        for _ in range(reps)
    ]
    return pd.DataFrame(rows)


def fit(data, **kw):
    kw.setdefault("lower_limit", 1e10)
    return estimate_shelf_life(
        data, time_col="hour", response_col="count", transform="log", time_unit="hour", **kw
    )


def test_particles_at_expiry_label_claim_matches_statsmodels():
    data = decay(0.005)
    r = fit(data)
    out = particles_at_expiry(r, expiry=48, label_claim_per_unit=1e9)
    ols = sm.OLS(np.log(data["count"]), sm.add_constant(data["hour"].astype(float))).fit()
    slope = ols.params["hour"]
    slope_low = ols.conf_int(alpha=0.10).loc["hour", 0]  # one-sided 95 % lower bound
    assert out.basis == "label_claim" and out.batch == "all"  # no batch column: one batch
    assert out.predicted_per_unit == pytest.approx(1e9 * math.exp(slope * 48), rel=1e-10)
    assert out.lower_bound_per_unit == pytest.approx(1e9 * math.exp(slope_low * 48), rel=1e-10)
    assert out.lower_bound_per_unit < out.predicted_per_unit
    assert out.fraction_remaining == pytest.approx(out.predicted_per_unit / 1e9)


def test_particles_at_expiry_measured_matches_statsmodels():
    data = decay(0.005)
    r = fit(data)
    out = particles_at_expiry(r, expiry=60, volume_ml_per_unit=0.5)
    ols = sm.OLS(np.log(data["count"]), sm.add_constant(data["hour"].astype(float))).fit()
    pred = ols.get_prediction(np.array([[1.0, 60.0]])).summary_frame(alpha=0.10)
    assert out.basis == "measured"
    assert out.predicted_per_unit == pytest.approx(0.5 * math.exp(pred["mean"].iloc[0]), rel=1e-10)
    assert out.lower_bound_per_unit == pytest.approx(
        0.5 * math.exp(pred["mean_ci_lower"].iloc[0]), rel=1e-10
    )


def test_particles_at_expiry_defaults_to_supported_shelf_life_and_worst_batch():
    data = decay(0.004, lots=("A", "B", "C"), seed=3)
    data.loc[data["lot"] == "C", "count"] *= np.exp(-0.004 * data.loc[data["lot"] == "C", "hour"])
    r = fit(data, batch_col="lot", storage="refrigerated")
    assert r.model == "dids" and r.worst_batch == "C"
    out = particles_at_expiry(r, label_claim_per_unit=1e9)
    assert out.expiry == r.supported_shelf_life
    assert out.batch == "C"
    assert out.fraction_remaining == pytest.approx(math.exp(r.line("C").slope * out.expiry))


def test_particles_at_expiry_lower_bound_coverage():
    """The 95 % lower bound on the fraction remaining holds in about 95 % of studies."""
    k, t_exp = 0.005, 48.0
    truth = math.exp(-k * t_exp)
    hits = [
        particles_at_expiry(
            fit(decay(k, seed=s, reps=2)), expiry=t_exp, label_claim_per_unit=1.0
        ).lower_bound_per_unit
        <= truth
        for s in range(300)
    ]
    # binomial(300, 0.95): mean 285, sd 3.8 -> accept 270..297 (about 4 sd)
    assert 270 <= sum(hits) <= 297


def test_particles_at_expiry_needs_log_fit_for_label_claim():
    data = decay(0.005)
    r = estimate_shelf_life(data, time_col="hour", response_col="count", lower_limit=1e10)
    with pytest.raises(StabilityError, match="log"):
        particles_at_expiry(r, label_claim_per_unit=1e9)


# --- accelerated -------------------------------------------------------------------------
EA, K25 = 80_000.0, 0.002  # J/mol, per hour at 25 °C
TEMPS = [25.0, 37.0, 45.0, 55.0]


def k_true(temperature_c):
    return K25 * math.exp(-EA / R_J_PER_MOL_K * (1 / (temperature_c + 273.15) - 1 / 298.15))


def accelerated_study(seed, cv=0.03):
    rng = np.random.default_rng(seed)
    rows = []
    for temp in TEMPS:
        times = np.linspace(0, 1.0 / k_true(temp), 6)  # about one e-fold at each temperature
        for t in times:
            for lot in ("A", "B"):
                count = 1e10 * math.exp(-k_true(temp) * t + rng.normal(0, cv))
                rows.append({"temperature_c": temp, "hour": t, "lot": lot, "count": count})
    return pd.DataFrame(rows)


def arrhenius(seed):
    rates = first_order_rates(
        accelerated_study(seed),
        time_col="hour",
        count_col="count",
        temperature_col="temperature_c",
        batch_col="lot",
    )
    return rates, arrhenius_fit(rates)


def test_rates_and_arrhenius_recover_truth():
    rates, fit_ = arrhenius(0)
    for r in rates:
        assert abs(r.k - k_true(r.temperature_c)) < 4 * r.se_k
    assert fit_.ea_low_j_per_mol < EA < fit_.ea_high_j_per_mol
    assert fit_.ea_j_per_mol == pytest.approx(EA, rel=0.1)
    pred = fit_.predict(4.0)
    assert pred.k_low < k_true(4.0) < pred.k_high
    t_half, t_half_low = pred.time_to_fraction(0.5)
    assert t_half == pytest.approx(math.log(2) / pred.k)
    assert t_half_low == pytest.approx(math.log(2) / pred.k_high) and t_half_low < t_half


def test_arrhenius_interval_coverage():
    ea_hits = k_hits = 0
    for seed in range(150):
        _, fit_ = arrhenius(seed + 100)
        ea_hits += fit_.ea_low_j_per_mol < EA < fit_.ea_high_j_per_mol
        pred = fit_.predict(4.0)
        k_hits += pred.k_low < k_true(4.0) < pred.k_high
    # nominal 95 %: binomial(150, 0.95) sd 2.7 -> accept 130..150 (Birge scale may over-cover)
    assert 130 <= ea_hits <= 150
    assert 130 <= k_hits <= 150


def test_accelerated_errors():
    data = accelerated_study(1)
    with pytest.raises(StabilityError, match="two or more temperatures"):
        arrhenius_fit(
            first_order_rates(
                data[data["temperature_c"] == 25.0],
                time_col="hour",
                count_col="count",
                temperature_col="temperature_c",
            )
        )
    flat = data.assign(count=1e10)
    flat.loc[flat.index[::2], "count"] = 1.01e10
    with pytest.raises(StabilityError, match="no measurable loss"):
        first_order_rates(flat, time_col="hour", count_col="count", temperature_col="temperature_c")
    with pytest.raises(StabilityError, match=r"missing column.*temp"):
        first_order_rates(data, time_col="hour", count_col="count", temperature_col="temp")


def freeze_thaw_study(seed, loss=0.05, cv=0.03):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        [
            {"cycle": c, "lot": lot, "count": 1e10 * (1 - loss) ** c * math.exp(rng.normal(0, cv))}
            for c in range(6)
            for lot in ("A", "B")
            for _ in range(2)
        ]
    )


def test_freeze_thaw_loss_recovers_truth_and_covers():
    out = freeze_thaw_loss(freeze_thaw_study(0), cycle_col="cycle", count_col="count")
    assert out.loss_low < 0.05 < out.loss_high
    assert out.loss_per_cycle == pytest.approx(0.05, abs=0.01)
    hits = 0
    for seed in range(200):
        res = freeze_thaw_loss(
            freeze_thaw_study(seed + 1), cycle_col="cycle", count_col="count", batch_col="lot"
        )
        hits += res.loss_low < 0.05 < res.loss_high
    assert 178 <= hits <= 199  # binomial(200, 0.95): mean 190, sd 3.1
