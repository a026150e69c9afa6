"""ICH Q1E extrapolation rules: how far beyond the long-term data a shelf life may reach.

ICH Q1E (Evaluation of Stability Data, 2003), sections 2.4–2.5 and the decision tree of
Appendix A, limit the shelf life that long-term data covering a period ``X`` can support:

=========================  =================================  ================================
storage                    accelerated condition              supported shelf life at most
=========================  =================================  ================================
room temperature           no significant change              min(2X, X + 12 months)
room temperature           significant change, intermediate   min(1.5X, X + 6 months)
                           condition without significant
                           change
room temperature           significant change at accelerated  X (no extrapolation)
                           and at intermediate condition
refrigerated               no significant change              min(1.5X, X + 6 months)
refrigerated               significant change                 X (no extrapolation)
frozen                     (none defined)                     X (no extrapolation)
=========================  =================================  ================================

The supported shelf life is the statistical estimate, capped at that limit. exocheck always
performs the statistical analysis, so the branches of the tree for data that are "not amenable to
statistical analysis" do not arise. The tree also asks whether "relevant supporting data" back the
extrapolation and whether change at the accelerated condition was significant; exocheck cannot
judge either from a long-term data set alone, so they are inputs (default: no significant change)
and the result carries a warning that names the assumption.
"""

from __future__ import annotations

import math
from typing import Literal

from exocheck.errors import StabilityError

Storage = Literal["frozen", "refrigerated", "room"]
Change = Literal["none", "significant"]

#: Length of one month expressed in each supported time unit (1 month = 365.25 / 12 days).
MONTH_IN_UNIT: dict[str, float] = {
    "month": 1.0,
    "year": 1.0 / 12.0,
    "week": 365.25 / 12.0 / 7.0,
    "day": 365.25 / 12.0,
    "hour": 365.25 / 12.0 * 24.0,
}


def extrapolation_limit(
    longest_time: float,
    storage: Storage,
    *,
    time_unit: str = "month",
    accelerated_change: Change = "none",
    intermediate_change: Change = "none",
) -> tuple[float, str]:
    """The longest shelf life ICH Q1E lets long-term data covering ``longest_time`` support.

    Parameters
    ----------
    longest_time
        ``X``: the longest time point covered by long-term data, in ``time_unit``.
    storage
        ``"room"``, ``"refrigerated"`` or ``"frozen"``.
    time_unit
        Unit of the times (one of :data:`MONTH_IN_UNIT`); the "+ 12 months" rules need it.
    accelerated_change, intermediate_change
        Whether a significant change was seen at the accelerated (and intermediate) condition.

    Returns
    -------
    (limit, rule)
        The cap, in ``time_unit``, and the ICH Q1E rule that set it, in words.
    """
    if time_unit not in MONTH_IN_UNIT:
        raise StabilityError(
            f"unknown time unit {time_unit!r}: use one of {', '.join(MONTH_IN_UNIT)}"
        )
    if storage not in ("frozen", "refrigerated", "room"):
        raise StabilityError(f"unknown storage {storage!r}: use frozen, refrigerated or room")
    month = MONTH_IN_UNIT[time_unit]
    x = float(longest_time)
    if storage == "frozen":
        return x, "frozen storage: ICH Q1E 2.5.2 allows no extrapolation beyond long-term data"
    if storage == "refrigerated":
        if accelerated_change == "significant":
            return x, "refrigerated, significant change at accelerated condition: no extrapolation"
        return min(1.5 * x, x + 6 * month), "refrigerated (ICH Q1E 2.5.1): min(1.5X, X + 6 months)"
    if accelerated_change == "none":
        rule = "room temperature (ICH Q1E 2.4.1): min(2X, X + 12 months)"
        return min(2 * x, x + 12 * month), rule
    if intermediate_change == "none":
        return min(1.5 * x, x + 6 * month), (
            "significant change at accelerated condition only (ICH Q1E 2.4.2.1): "
            "min(1.5X, X + 6 months)"
        )
    return x, "significant change at accelerated and intermediate condition: no extrapolation"


def supported_shelf_life(
    shelf_life: float | None,
    longest_time: float,
    storage: Storage,
    *,
    time_unit: str = "month",
    accelerated_change: Change = "none",
    intermediate_change: Change = "none",
    accelerated_given: bool = False,
) -> tuple[float, list[str]]:
    """Apply the ICH Q1E extrapolation rules to a statistical shelf life.

    ``shelf_life`` ``None`` means the limit was not reached within the search horizon; the
    supported shelf life is then the extrapolation limit itself.

    Returns
    -------
    (supported, warnings)
    """
    cap, rule = extrapolation_limit(
        longest_time,
        storage,
        time_unit=time_unit,
        accelerated_change=accelerated_change,
        intermediate_change=intermediate_change,
    )
    warnings: list[str] = []
    statistical = math.inf if shelf_life is None else float(shelf_life)
    supported = min(statistical, cap)
    if storage == "frozen" and statistical > longest_time:
        warnings.append(
            f"frozen storage: no extrapolation beyond the long-term data "
            f"(supported shelf life limited to {longest_time:g} {time_unit})"
        )
    elif statistical > cap:
        warnings.append(
            f"statistical shelf life exceeds what ICH Q1E lets data to {longest_time:g} "
            f"{time_unit} support; capped at {cap:.6g} {time_unit} ({rule})"
        )
    if statistical > longest_time and storage != "frozen":
        if not accelerated_given:
            warnings.append(
                "extrapolation assumes no significant change at the accelerated condition "
                "and relevant supporting data (not checked)"
            )
        else:
            warnings.append("extrapolation assumes relevant supporting data (not checked)")
    return supported, warnings
