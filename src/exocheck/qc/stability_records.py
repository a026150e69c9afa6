"""Result records of the shelf-life engine (:mod:`exocheck.qc.stability`).

Plain pydantic records: the store can persist them, the certificate of analysis can render them
and ``model_dump()`` gives JSON. Lines are kept in the fitted scale (``ln`` of the response when
``transform == "log"``) with the covariance of their intercept and slope, so confidence limits
can be recomputed anywhere without the fitted model objects.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from exocheck.errors import StabilityError
from exocheck.qc.ich_q1e import Storage

ModelType = Literal["cics", "dics", "dids"]
Side = Literal["lower", "upper"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchLine(_Record):
    """One fitted regression line (in the fitted, possibly log, scale) with its uncertainty."""

    batch: str
    intercept: float
    slope: float
    var_intercept: float
    cov_intercept_slope: float
    var_slope: float
    df_resid: float
    n: int

    def mean(self, t: np.ndarray | float) -> np.ndarray:
        """Fitted mean at time(s) ``t`` (fitted scale)."""
        return self.intercept + self.slope * np.asarray(t, dtype=float)

    def se_mean(self, t: np.ndarray | float) -> np.ndarray:
        """Standard error of the fitted mean at time(s) ``t`` (fitted scale)."""
        t = np.asarray(t, dtype=float)
        var = self.var_intercept + 2 * t * self.cov_intercept_slope + t * t * self.var_slope
        return np.sqrt(np.maximum(var, 0.0))

    def bound(self, t: np.ndarray | float, side: Side, quantile: float) -> np.ndarray:
        """Confidence limit of the mean at ``t``: ``quantile`` is the one-sided coverage."""
        from scipy import stats  # imported on use: the store loads these records, not scipy

        q = stats.t.ppf(quantile, self.df_resid)
        sign = -1.0 if side == "lower" else 1.0
        return self.mean(t) + sign * q * self.se_mean(t)


class Poolability(_Record):
    """ANCOVA poolability tests (F ratios over the full model's residual mean square)."""

    f_slopes: float
    p_slopes: float
    f_intercepts: float
    p_intercepts: float
    alpha: float


class ShelfLifeResult(_Record):
    """Everything the shelf-life estimate rests on. Times are in ``time_unit``."""

    model: ModelType
    shelf_life: float | None
    by_side: dict[str, float | None]
    worst_batch: str | None
    supported_shelf_life: float
    longest_time: float
    per_batch: dict[str, dict[str, float | None]]
    lines: list[BatchLine]
    poolability: Poolability | None
    lower_limit: float | None
    upper_limit: float | None
    transform: Literal["none", "log"]
    confidence: float
    one_sided_quantile: float
    storage: Storage
    time_unit: str
    batches: list[str]
    n_observations: int
    warnings: list[str]

    def line(self, batch: str | None = None) -> BatchLine:
        """The fitted line of ``batch``; without ``batch``, the governing (worst) batch's line.

        Under ``cics`` every batch shares the one common line.
        """
        if self.model == "cics" and len(self.lines) == 1:
            return self.lines[0]
        batch = batch if batch is not None else self.worst_batch
        if batch is None:
            raise StabilityError("no batch governs (limit never met): name the batch")
        for line in self.lines:
            if line.batch == batch:
                return line
        raise StabilityError(f"no fitted line for batch {batch!r}")

    def to_original(self, value: np.ndarray | float) -> np.ndarray:
        """Back-transform from the fitted scale to the response's own units."""
        value = np.asarray(value, dtype=float)
        return np.exp(value) if self.transform == "log" else value

    def summary(self) -> dict:
        """The JSON-ready summary (the ``--json`` output of ``exocheck shelf-life``)."""
        out = {
            "model": self.model,
            "shelf_life": self.shelf_life,
            "by_side": self.by_side,
            "worst_batch": self.worst_batch,
            "supported_shelf_life": self.supported_shelf_life,
            "warnings": self.warnings,
        }
        rest = self.model_dump(exclude=set(out))
        return out | rest
