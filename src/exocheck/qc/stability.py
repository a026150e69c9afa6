"""Shelf life by ICH Q1E: analysis of covariance of an attribute against time over batches.

Method (ICH Q1E, 2003, sections 2.3–2.4 and Appendix B; LeBlond, Griffith and Aubuchon,
J Valid Technol 17(3):47–68, 2011):

1. Fit the full ANCOVA model ``y ~ batch * time`` (different intercepts and slopes).
2. Poolability at ``alpha_pool = 0.25``: first equal slopes (F of the batch × time term), then,
   if the slopes may be pooled, equal intercepts (F of batch adjusted for time). Both F ratios use
   the full model's residual mean square, as the ANCOVA table of LeBlond 2011 and JMP do.
3. The model chosen is ``cics`` (common intercept, common slope), ``dics`` (different intercepts,
   common slope) or ``dids`` (different intercepts and slopes). For ``dids`` each batch is fitted
   on its own (its own residual variance), as ICH Q1E says ("the shelf life ... based on the
   minimum time a batch can be expected to remain within acceptance criteria"), and the worst
   batch governs.
4. Shelf life is the earliest time ``t >= 0`` at which the one-sided 95 % confidence limit of the
   mean response meets the acceptance limit. With both a lower and an upper limit, two-sided
   95 % limits are used (one-sided 97.5 % on each side). The crossing is bracketed on a grid and
   solved to machine precision with Brent's method.

With ``transform="log"`` the model is fitted to ``ln(response)`` (first-order loss, e.g. particle
counts); limits are transformed the same way and the results are reported in original units.

If the limit is not met within ``horizon_factor`` times the longest time point, the crossing is
reported as ``None`` (JSON ``null``) with a warning. A limit already failed at time 0 gives a shelf
life of 0 with a warning. The ICH Q1E extrapolation rules (:mod:`exocheck.qc.ich_q1e`) give the
``supported_shelf_life``; ``shelf_life`` itself is never capped.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize
from statsmodels.stats.anova import anova_lm

from exocheck.errors import StabilityError
from exocheck.qc.ich_q1e import Change, Storage, supported_shelf_life
from exocheck.qc.stability_records import (
    BatchLine,
    ModelType,
    Poolability,
    ShelfLifeResult,
    Side,
)

__all__ = [
    "BatchLine",
    "Poolability",
    "ShelfLifeResult",
    "crossing_time",
    "estimate_shelf_life",
    "fit_lines",
    "prepare_data",
]
_GRID_POINTS = 4001
_MIN_TIME_POINTS = 3


def prepare_data(
    data: pd.DataFrame, time_col: str, response_col: str, batch_col: str | None
) -> pd.DataFrame:
    """Check and tidy the input table into columns ``batch, time, response``."""
    wanted = [c for c in (time_col, response_col, batch_col) if c is not None]
    missing = [c for c in wanted if c not in data.columns]
    if missing:
        have = ", ".join(map(str, data.columns))
        raise StabilityError(f"missing column(s) {', '.join(missing)} (columns are: {have})")
    out = pd.DataFrame(
        {
            "batch": data[batch_col].astype(str) if batch_col else "all",
            "time": pd.to_numeric(data[time_col], errors="coerce"),
            "response": pd.to_numeric(data[response_col], errors="coerce"),
        }
    )
    for col, name in (("time", time_col), ("response", response_col)):
        bad = out[col].isna() & data[name].notna()
        if bad.any():
            example = data.loc[bad, name].iloc[0]
            raise StabilityError(f"column {name} holds a non-numeric value ({example!r})")
    out = out.dropna().reset_index(drop=True)
    if not np.isfinite(out[["time", "response"]].to_numpy()).all():
        raise StabilityError("time and response must be finite numbers")
    if (out["time"] < 0).any():
        raise StabilityError(f"column {time_col} holds a negative time")
    for batch, group in out.groupby("batch", sort=False):
        n_times = group["time"].nunique()
        if n_times < _MIN_TIME_POINTS:
            which = "the data" if batch_col is None else f"batch {batch}"
            raise StabilityError(
                f"{which} has {n_times} distinct time point(s); a shelf-life estimate "
                f"needs at least {_MIN_TIME_POINTS}"
            )
        if len(group) < _MIN_TIME_POINTS:
            raise StabilityError(f"batch {batch} has fewer than {_MIN_TIME_POINTS} results")
    return out


def _design(frame: pd.DataFrame, batches: list[str], kind: str) -> np.ndarray:
    """Cell-means design matrices: the coefficients are the lines' own intercepts and slopes."""
    t = frame["time"].to_numpy()
    onehot = (frame["batch"].to_numpy()[:, None] == np.asarray(batches)[None, :]).astype(float)
    if kind == "cics":
        return np.column_stack([np.ones_like(t), t])
    if kind == "dics":
        return np.column_stack([onehot, t])
    return np.column_stack([onehot, onehot * t[:, None]])


def _line(batch: str, fit, i_icpt: int, i_slope: int, n: int) -> BatchLine:
    cov = np.asarray(fit.cov_params())
    params = np.asarray(fit.params)
    return BatchLine(
        batch=batch,
        intercept=float(params[i_icpt]),
        slope=float(params[i_slope]),
        var_intercept=float(cov[i_icpt, i_icpt]),
        cov_intercept_slope=float(cov[i_icpt, i_slope]),
        var_slope=float(cov[i_slope, i_slope]),
        df_resid=float(fit.df_resid),
        n=n,
    )


def fit_lines(
    frame: pd.DataFrame, alpha_pool: float = 0.25
) -> tuple[ModelType, list[BatchLine], Poolability | None]:
    """Choose the ICH Q1E model by the poolability tests and return its fitted lines."""
    batches = list(dict.fromkeys(frame["batch"]))
    y = frame["response"].to_numpy()
    cics = sm.OLS(y, _design(frame, batches, "cics")).fit()
    if len(batches) == 1:
        return "cics", [_line(batches[0], cics, 0, 1, len(frame))], None
    dics = sm.OLS(y, _design(frame, batches, "dics")).fit()
    full = sm.OLS(y, _design(frame, batches, "dids")).fit()
    if full.df_resid < 1:
        raise StabilityError("too few results to test poolability (no residual degrees of freedom)")
    table = anova_lm(cics, dics, full)
    pool = Poolability(
        f_slopes=float(table["F"].iloc[2]),
        p_slopes=float(table["Pr(>F)"].iloc[2]),
        f_intercepts=float(table["F"].iloc[1]),
        p_intercepts=float(table["Pr(>F)"].iloc[1]),
        alpha=alpha_pool,
    )
    nb = len(batches)
    if pool.p_slopes <= alpha_pool:
        lines = []
        for batch in batches:
            sub = frame[frame["batch"] == batch]
            fit = sm.OLS(sub["response"].to_numpy(), _design(sub, [batch], "cics")).fit()
            lines.append(_line(batch, fit, 0, 1, len(sub)))
        return "dids", lines, pool
    if pool.p_intercepts <= alpha_pool:
        counts = frame["batch"].value_counts()
        lines = [_line(b, dics, i, nb, int(counts[b])) for i, b in enumerate(batches)]
        return "dics", lines, pool
    return "cics", [_line("all", cics, 0, 1, len(frame))], pool


def crossing_time(
    line: BatchLine, limit: float, side: Side, quantile: float, horizon: float
) -> float | None:
    """Earliest ``t`` in ``[0, horizon]`` where the confidence limit of the mean meets ``limit``.

    Returns 0 when the limit is already failed at time 0 and ``None`` when it is not met within
    the horizon. The first sign change on a fine grid brackets the root; Brent's method then
    solves it to full precision.
    """

    def margin(t):
        b = line.bound(t, side, quantile)
        return b - limit if side == "lower" else limit - b

    if margin(0.0) <= 0:
        return 0.0
    grid = np.linspace(0.0, horizon, _GRID_POINTS)
    values = margin(grid)
    hit = np.flatnonzero(values <= 0)
    if hit.size == 0:
        return None
    i = int(hit[0])
    if values[i] == 0:
        return float(grid[i])
    return float(optimize.brentq(margin, grid[i - 1], grid[i], xtol=1e-13, rtol=1e-15, maxiter=500))


def estimate_shelf_life(
    data: pd.DataFrame,
    *,
    time_col: str,
    response_col: str,
    batch_col: str | None = None,
    lower_limit: float | None = None,
    upper_limit: float | None = None,
    transform: Literal["none", "log"] = "none",
    confidence: float = 0.95,
    alpha_pool: float = 0.25,
    storage: Storage = "room",
    time_unit: str = "month",
    accelerated_change: Change | None = None,
    intermediate_change: Change = "none",
    horizon_factor: float = 20.0,
) -> ShelfLifeResult:
    """Estimate the shelf life of a stability data set by ICH Q1E.

    Parameters
    ----------
    data
        One row per result: time, response and (optionally) batch.
    time_col, response_col, batch_col
        Column names. Without ``batch_col`` all rows form one batch.
    lower_limit, upper_limit
        Acceptance limits in the response's own units; at least one is required.
    transform
        ``"log"`` fits ``ln(response)`` (first-order loss); ``"none"`` fits the response.
    confidence
        Confidence of the limit of the mean (0.95 by ICH Q1E).
    alpha_pool
        Significance level of the poolability tests (0.25 by ICH Q1E).
    storage, time_unit, accelerated_change, intermediate_change
        Inputs to the ICH Q1E extrapolation rules (:mod:`exocheck.qc.ich_q1e`);
        ``accelerated_change=None`` means unknown, treated as no significant change, with a
        warning.
    horizon_factor
        The crossing is searched up to ``horizon_factor`` times the longest time point.

    Returns
    -------
    ShelfLifeResult
    """
    if lower_limit is None and upper_limit is None:
        raise StabilityError("no acceptance limit given: set a lower limit, an upper limit or both")
    if lower_limit is not None and upper_limit is not None and lower_limit >= upper_limit:
        raise StabilityError(f"lower limit {lower_limit} is not below upper limit {upper_limit}")
    if transform not in ("none", "log"):
        raise StabilityError(f"unknown transform {transform!r}: use none or log")
    if not 0.5 < confidence < 1:
        raise StabilityError(f"confidence {confidence} must lie between 0.5 and 1")
    frame = prepare_data(data, time_col, response_col, batch_col)
    limits = {"lower": lower_limit, "upper": upper_limit}
    if transform == "log":
        if (frame["response"] <= 0).any():
            raise StabilityError(f"log transform needs positive values in {response_col}")
        if any(v is not None and v <= 0 for v in limits.values()):
            raise StabilityError("log transform needs positive acceptance limits")
        frame["response"] = np.log(frame["response"])
        fitted_limits = {k: (None if v is None else math.log(v)) for k, v in limits.items()}
    else:
        fitted_limits = dict(limits)

    model, lines, pool = fit_lines(frame, alpha_pool)
    both = lower_limit is not None and upper_limit is not None
    quantile = 1 - (1 - confidence) / 2 if both else confidence
    longest = float(frame["time"].max())
    horizon = horizon_factor * longest
    warnings: list[str] = []
    batches = list(dict.fromkeys(frame["batch"]))
    if len(batches) == 1:
        warnings.append("one batch only: poolability not tested; ICH Q1E asks for at least three")
    elif len(batches) < 3:
        warnings.append(f"{len(batches)} batches: ICH Q1E bases shelf life on at least three")

    per_batch: dict[str, dict[str, float | None]] = {}
    for line in lines:
        per_batch[line.batch] = {
            side: (
                None
                if fitted_limits[side] is None
                else crossing_time(line, fitted_limits[side], side, quantile, horizon)
            )
            for side in ("lower", "upper")
        }
    by_side: dict[str, float | None] = {}
    worst: tuple[float, str] | None = None
    for side in ("lower", "upper"):
        times = [(v[side], b) for b, v in per_batch.items() if v[side] is not None]
        by_side[side] = min(times)[0] if times else None
        if times and (worst is None or min(times) < worst):
            worst = min(times)
        if fitted_limits[side] is not None and not times:
            warnings.append(
                f"the {side} limit is not met within {horizon:g} {time_unit} "
                f"({horizon_factor:g} x the longest time point): shelf life not limited by it"
            )
    shelf_life = None if worst is None else worst[0]
    if shelf_life == 0.0:
        warnings.append("the acceptance limit is already failed at time 0: shelf life 0")
    if model == "cics" and len(batches) > 1:
        worst_batch = None
    elif worst is not None:
        worst_batch = worst[1]
    else:
        worst_batch = None
    _direction_warnings(lines, fitted_limits, warnings)

    supported, rule_warnings = supported_shelf_life(
        shelf_life,
        longest,
        storage,
        time_unit=time_unit,
        accelerated_change=accelerated_change or "none",
        intermediate_change=intermediate_change,
        accelerated_given=accelerated_change is not None,
    )
    warnings.extend(rule_warnings)
    return ShelfLifeResult(
        model=model,
        shelf_life=shelf_life,
        by_side=by_side,
        worst_batch=worst_batch,
        supported_shelf_life=supported,
        longest_time=longest,
        per_batch=per_batch,
        lines=lines,
        poolability=pool,
        lower_limit=lower_limit,
        upper_limit=upper_limit,
        transform=transform,
        confidence=confidence,
        one_sided_quantile=quantile,
        storage=storage,
        time_unit=time_unit,
        batches=batches,
        n_observations=len(frame),
        warnings=warnings,
    )


def _direction_warnings(
    lines: list[BatchLine], limits: dict[str, float | None], warnings: list[str]
) -> None:
    """Warn when the trend runs away from the only limit given (ICH Q1E: choose the side)."""
    slopes = [line.slope for line in lines]
    if limits["upper"] is None and all(s > 0 for s in slopes):
        warnings.append(
            "the attribute increases with time but only a lower limit is given; "
            "check whether an upper limit applies"
        )
    if limits["lower"] is None and all(s < 0 for s in slopes):
        warnings.append(
            "the attribute decreases with time but only an upper limit is given; "
            "check whether a lower limit applies"
        )
