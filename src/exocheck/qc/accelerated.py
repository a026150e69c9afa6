"""Accelerated stability: first-order rate constants, Arrhenius fit, freeze–thaw loss.

* **Rate per temperature.** Particle loss is taken as first order, ``N(t) = N0 exp(-k t)``: an
  ordinary least-squares fit of ``ln N`` against time (one intercept per lot, a common slope)
  gives ``k = -slope`` and its standard error. ``se(ln k) = se(k) / k`` (delta method).
* **Arrhenius.** ``ln k = ln A - Ea / (R T)`` fitted by weighted least squares (statsmodels WLS)
  with weights ``1 / se(ln k)^2``. The weights are known variances, so the covariance uses a
  fixed scale of 1, inflated by the Birge ratio ``chi2 / dof`` when the temperatures scatter
  more than their standard errors allow (never deflated). Intervals use normal quantiles.
  The predicted ``ln k`` at the storage temperature has standard error ``sqrt(x C x')`` with
  ``x = (1, 1/T)``; the interval on ``k`` is its exponential.
* **Time to a fraction remaining** ``f``: ``t = -ln f / k``; its lower confidence bound uses the
  upper bound of ``k``.
* **Freeze–thaw.** ``ln N`` against cycle number (one intercept per lot): the fraction lost per
  cycle is ``1 - exp(b)`` with a Student-t interval from the slope.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import statsmodels.api as sm
from pydantic import BaseModel, ConfigDict
from scipy import stats

from exocheck.errors import StabilityError

R_J_PER_MOL_K = 8.314462618
ZERO_C_K = 273.15


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateConstant(_Record):
    """First-order loss rate at one temperature (per unit of the data's time)."""

    temperature_c: float
    k: float
    se_k: float
    se_ln_k: float
    df_resid: float
    n: int


class RatePrediction(_Record):
    """Rate constant predicted at a temperature, with its confidence interval."""

    temperature_c: float
    k: float
    k_low: float
    k_high: float
    confidence: float

    def time_to_fraction(self, fraction_remaining: float) -> tuple[float, float]:
        """Time until ``fraction_remaining`` is left: (estimate, lower confidence bound)."""
        if not 0 < fraction_remaining < 1:
            raise StabilityError("the fraction remaining must lie between 0 and 1")
        loss = -math.log(fraction_remaining)
        return loss / self.k, loss / self.k_high


class ArrheniusFit(_Record):
    """``ln k = ln A - Ea / (R T)`` fitted over temperatures."""

    ea_j_per_mol: float
    ea_low_j_per_mol: float
    ea_high_j_per_mol: float
    ln_a: float
    var_ln_a: float
    cov_ln_a_slope: float
    var_slope: float
    birge_scale: float
    confidence: float
    rates: list[RateConstant]

    def predict(self, temperature_c: float) -> RatePrediction:
        """Rate constant at ``temperature_c`` with its confidence interval."""
        x = 1.0 / (temperature_c + ZERO_C_K)
        slope = -self.ea_j_per_mol / R_J_PER_MOL_K
        ln_k = self.ln_a + slope * x
        se = math.sqrt(max(self.var_ln_a + 2 * x * self.cov_ln_a_slope + x * x * self.var_slope, 0))
        z = stats.norm.ppf(0.5 + self.confidence / 2)
        return RatePrediction(
            temperature_c=temperature_c,
            k=math.exp(ln_k),
            k_low=math.exp(ln_k - z * se),
            k_high=math.exp(ln_k + z * se),
            confidence=self.confidence,
        )


class FreezeThawLoss(_Record):
    """Fraction of particles lost per freeze–thaw cycle."""

    loss_per_cycle: float
    loss_low: float
    loss_high: float
    slope: float
    se_slope: float
    df_resid: float
    n: int
    confidence: float


def _log_linear(frame: pd.DataFrame, x_col: str, y_col: str, batch_col: str | None):
    """OLS of ln(y) on x with one intercept per batch; returns (slope, se, df, n)."""
    y = frame[y_col].to_numpy(dtype=float)
    if (y <= 0).any() or not np.isfinite(y).all():
        raise StabilityError(f"column {y_col} must hold positive counts for a log-linear fit")
    x = frame[x_col].to_numpy(dtype=float)
    if np.unique(x).size < 2:
        raise StabilityError(f"column {x_col} needs at least two distinct values")
    groups = frame[batch_col].astype(str).to_numpy() if batch_col else np.zeros(len(frame))
    levels = list(dict.fromkeys(groups))
    design = np.column_stack([(groups == g).astype(float) for g in levels] + [x])
    if len(y) <= design.shape[1]:
        raise StabilityError(f"too few results for a log-linear fit of {y_col} on {x_col}")
    fit = sm.OLS(np.log(y), design).fit()
    return float(fit.params[-1]), float(fit.bse[-1]), float(fit.df_resid), len(y)


def _require(data: pd.DataFrame, cols: list[str | None]) -> None:
    missing = [c for c in cols if c is not None and c not in data.columns]
    if missing:
        raise StabilityError(f"missing column(s) {', '.join(missing)}")


def first_order_rates(
    data: pd.DataFrame,
    *,
    time_col: str,
    count_col: str,
    temperature_col: str,
    batch_col: str | None = None,
) -> list[RateConstant]:
    """First-order loss rate constant at each temperature of an accelerated study."""
    _require(data, [time_col, count_col, temperature_col, batch_col])
    rates = []
    for temperature, group in data.groupby(temperature_col, sort=True):
        slope, se, df, n = _log_linear(group, time_col, count_col, batch_col)
        k = -slope
        if k <= 0:
            raise StabilityError(
                f"no measurable loss at {temperature:g} °C (k = {k:.3g}): "
                "an Arrhenius fit needs a positive rate at every temperature"
            )
        rates.append(
            RateConstant(
                temperature_c=float(temperature), k=k, se_k=se, se_ln_k=se / k, df_resid=df, n=n
            )
        )
    return rates


def arrhenius_fit(rates: list[RateConstant], *, confidence: float = 0.95) -> ArrheniusFit:
    """Weighted Arrhenius regression of ``ln k`` on ``1 / T`` (see module notes)."""
    if len({r.temperature_c for r in rates}) < 2:
        raise StabilityError("an Arrhenius fit needs rates at two or more temperatures")
    x = np.array([1.0 / (r.temperature_c + ZERO_C_K) for r in rates])
    y = np.log([r.k for r in rates])
    w = 1.0 / np.array([r.se_ln_k for r in rates]) ** 2
    design = sm.add_constant(x, has_constant="add")
    dof = len(rates) - 2
    first = sm.WLS(y, design, weights=w).fit()
    chi2 = float(np.sum(w * first.resid**2))
    birge = max(1.0, chi2 / dof) if dof > 0 else 1.0
    fit = sm.WLS(y, design, weights=w).fit(cov_type="fixed scale", cov_kwds={"scale": birge})
    cov = np.asarray(fit.cov_params())
    slope, se_slope = float(fit.params[1]), math.sqrt(cov[1, 1])
    z = stats.norm.ppf(0.5 + confidence / 2)
    return ArrheniusFit(
        ea_j_per_mol=-slope * R_J_PER_MOL_K,
        ea_low_j_per_mol=-(slope + z * se_slope) * R_J_PER_MOL_K,
        ea_high_j_per_mol=-(slope - z * se_slope) * R_J_PER_MOL_K,
        ln_a=float(fit.params[0]),
        var_ln_a=float(cov[0, 0]),
        cov_ln_a_slope=float(cov[0, 1]),
        var_slope=float(cov[1, 1]),
        birge_scale=birge,
        confidence=confidence,
        rates=rates,
    )


def freeze_thaw_loss(
    data: pd.DataFrame,
    *,
    cycle_col: str,
    count_col: str,
    batch_col: str | None = None,
    confidence: float = 0.95,
) -> FreezeThawLoss:
    """Fraction of particles lost per freeze–thaw cycle, with a confidence interval."""
    _require(data, [cycle_col, count_col, batch_col])
    slope, se, df, n = _log_linear(data, cycle_col, count_col, batch_col)
    q = stats.t.ppf(0.5 + confidence / 2, df)
    return FreezeThawLoss(
        loss_per_cycle=1 - math.exp(slope),
        loss_low=1 - math.exp(slope + q * se),
        loss_high=1 - math.exp(slope - q * se),
        slope=slope,
        se_slope=se,
        df_resid=df,
        n=n,
        confidence=confidence,
    )
