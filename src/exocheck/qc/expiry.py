"""How many particles remain at the end of shelf life, with a lower confidence bound.

Two bases, both from a fitted :class:`~exocheck.qc.stability.ShelfLifeResult`:

* ``label_claim``: the product is released at its label claim (particles per unit) and loses
  particles by first order, as the study measured (``transform="log"``). The fraction remaining
  at time ``T`` is ``exp(b T)`` for the governing slope ``b``; its lower one-sided bound is
  ``exp((b - q se_b) T)`` with ``q`` the Student quantile on the model's residual degrees of
  freedom. Predicted particles per unit = claim x fraction.
* ``measured``: the study's own response is the particle count per unit (or per mL, converted
  with ``volume_ml_per_unit``). The prediction is the governing line's mean at ``T`` and the
  bound its one-sided lower confidence limit, back-transformed.

The governing line is the worst batch's (or the common line), i.e. the one with the lowest lower
bound at ``T``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from exocheck.errors import StabilityError
from exocheck.qc.stability_records import BatchLine, ShelfLifeResult


class ParticlesAtExpiry(BaseModel):
    """Predicted particles per unit at expiry and the lower one-sided confidence bound."""

    model_config = ConfigDict(extra="forbid")

    expiry: float
    time_unit: str
    basis: Literal["label_claim", "measured"]
    batch: str | None
    predicted_per_unit: float
    lower_bound_per_unit: float
    confidence: float
    fraction_remaining: float | None = None
    fraction_remaining_lower: float | None = None
    label_claim_per_unit: float | None = None


def particles_at_expiry(
    result: ShelfLifeResult,
    *,
    expiry: float | None = None,
    label_claim_per_unit: float | None = None,
    volume_ml_per_unit: float | None = None,
    confidence: float = 0.95,
) -> ParticlesAtExpiry:
    """Predicted particles per unit at ``expiry`` with a lower one-sided bound.

    Parameters
    ----------
    result
        A shelf-life estimate of a particle count (see module notes for the two bases).
    expiry
        Time of interest; default the result's ``supported_shelf_life``.
    label_claim_per_unit
        Label claim: gives the ``label_claim`` basis (needs ``transform="log"``).
    volume_ml_per_unit
        With the ``measured`` basis, converts a per-mL response into per unit.
    confidence
        One-sided confidence of the lower bound.
    """
    t = result.supported_shelf_life if expiry is None else float(expiry)
    if not math.isfinite(t) or t < 0:
        raise StabilityError(f"expiry {t} must be a finite time >= 0")
    if label_claim_per_unit is not None and label_claim_per_unit <= 0:
        raise StabilityError("the label claim must be a positive number of particles per unit")
    if label_claim_per_unit is not None and result.transform != "log":
        raise StabilityError(
            "particles at expiry from a label claim need a first-order (log) fit: "
            "estimate the shelf life with transform='log'"
        )

    def lower(line: BatchLine) -> float:
        if label_claim_per_unit is not None:
            from scipy import stats

            q = stats.t.ppf(confidence, line.df_resid)
            return (line.slope - q * math.sqrt(line.var_slope)) * t
        return float(line.bound(t, "lower", confidence))

    lines = result.lines
    if result.worst_batch is not None:
        lines = [result.line(result.worst_batch)] + [
            x for x in result.lines if x.batch != result.worst_batch
        ]
    line = min(lines, key=lower)  # ties keep the worst batch first
    batch = None if result.model == "cics" and len(result.batches) > 1 else line.batch

    if label_claim_per_unit is not None:
        fraction = math.exp(line.slope * t)
        fraction_low = math.exp(lower(line))
        return ParticlesAtExpiry(
            expiry=t,
            time_unit=result.time_unit,
            basis="label_claim",
            batch=batch,
            predicted_per_unit=label_claim_per_unit * fraction,
            lower_bound_per_unit=label_claim_per_unit * fraction_low,
            confidence=confidence,
            fraction_remaining=fraction,
            fraction_remaining_lower=fraction_low,
            label_claim_per_unit=label_claim_per_unit,
        )
    scale = 1.0 if volume_ml_per_unit is None else float(volume_ml_per_unit)
    if scale <= 0:
        raise StabilityError("the volume per unit must be positive")
    mean = float(result.to_original(line.mean(t))) * scale
    low = float(result.to_original(lower(line))) * scale
    return ParticlesAtExpiry(
        expiry=t,
        time_unit=result.time_unit,
        basis="measured",
        batch=batch,
        predicted_per_unit=mean,
        lower_bound_per_unit=low,
        confidence=confidence,
    )
