"""Batch comparability: is a lot like the lots before it?

* **Equivalence** (TOST, two one-sided t tests; Schuirmann 1987) of a lot against reference lots
  on log concentration and on D50, with the margin ±1.5 σ of the reference lots, as in the FDA's
  tiered approach for analytical similarity (tier 1). ``statsmodels`` does the test.
* **Quality range**: mean ± k·σ of the reference lots (k = 3 by default).
* **Size-distribution similarity**: overlap coefficient, Kolmogorov–Smirnov distance of the
  CDFs and the Wasserstein (earth mover's) distance in nm (``scipy``).
* **Control chart** of the product's lots over time: individuals chart with σ from the mean
  moving range (MR̄/1.128), limits ±3σ, Western Electric rules 1–4.
* **Cpk** (within-σ) and Ppk (overall σ) where specification limits exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind

from exocheck.errors import AnalysisError
from exocheck.qc.lotdata import LotData
from exocheck.records import SizeDistribution

D2_MOVING_RANGE = 1.128  # d2 for subgroups of 2 (moving range of consecutive points)
#: Fewest lots from which control limits, rule checks and capability indices are stated. With
#: fewer, σ from the moving ranges is too uncertain to set limits on (with 10 lots its 95 %
#: interval still spans about ±45 %); QC practice asks for 20–25 points for final limits and
#: accepts trial limits from about 10. Charts of fewer lots show the values and the
#: specification only.
MIN_LOTS_FOR_LIMITS = 10


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Equivalence(_Record):
    attribute: str
    difference: float
    margin: float
    p_value: float
    equivalent: bool
    n_test: int
    n_reference: int
    alpha: float


class QualityRange(_Record):
    attribute: str
    low: float
    high: float
    k: float
    value: float
    within: bool


class SizeSimilarity(_Record):
    overlap: float
    ks_distance: float
    wasserstein_nm: float
    similar: bool


class Violation(_Record):
    rule: int
    index: int
    window: list[int]
    description: str


class ControlChart(_Record):
    attribute: str
    labels: list[str]
    values: list[float]
    center: float
    sigma: float
    lcl: float
    ucl: float
    violations: list[Violation]


class Capability(_Record):
    attribute: str
    lsl: float | None
    usl: float | None
    cpk: float
    ppk: float


class ComparabilityReport(_Record):
    lot: str
    references: list[str]
    equivalence: list[Equivalence]
    quality_ranges: list[QualityRange]
    size: SizeSimilarity | None
    comparable: bool


def equivalence_tost(
    test: Sequence[float],
    reference: Sequence[float],
    margin: float,
    attribute: str = "value",
    alpha: float = 0.05,
) -> Equivalence:
    """TOST of mean(test) − mean(reference) within ±``margin`` (pooled-variance t tests).

    ``test`` are replicate values of the lot under test (one value is allowed), ``reference``
    one value per reference lot (at least two).
    """
    x1 = np.asarray(test, dtype=float)
    x2 = np.asarray(reference, dtype=float)
    if x1.size < 1 or x2.size < 2 or x1.size + x2.size < 3:
        raise AnalysisError(f"{attribute}: TOST needs a test value and at least two reference lots")
    if not margin > 0:
        raise AnalysisError(
            f"{attribute}: the equivalence margin must be positive (the reference "
            "lots have no spread)"
        )
    p_value, _, _ = ttost_ind(x1, x2, -margin, margin, usevar="pooled")
    p_value = float(p_value)
    return Equivalence(
        attribute=attribute,
        difference=float(x1.mean() - x2.mean()),
        margin=float(margin),
        p_value=p_value,
        equivalent=p_value < alpha,
        n_test=int(x1.size),
        n_reference=int(x2.size),
        alpha=alpha,
    )


def quality_range(
    reference: Sequence[float], value: float, k: float = 3.0, attribute: str = "value"
) -> QualityRange:
    """Is ``value`` within mean ± k·σ (sample SD) of the reference lots?"""
    ref = np.asarray(reference, dtype=float)
    if ref.size < 2:
        raise AnalysisError(f"{attribute}: a quality range needs at least two reference lots")
    mean, sd = float(ref.mean()), float(ref.std(ddof=1))
    low, high = mean - k * sd, mean + k * sd
    return QualityRange(
        attribute=attribute,
        low=low,
        high=high,
        k=k,
        value=float(value),
        within=bool(low <= value <= high),
    )


def _cdf_on(dist: SizeDistribution, grid: np.ndarray) -> np.ndarray:
    edges = np.asarray(dist.bin_edges_nm, dtype=float)
    cdf = np.concatenate([[0.0], np.cumsum(dist.density)])
    return np.interp(grid, edges, cdf, left=0.0, right=1.0)


def size_similarity(
    a: SizeDistribution, b: SizeDistribution, min_overlap: float = 0.8
) -> SizeSimilarity:
    """Compare two binned number distributions (bins may differ: both CDFs are interpolated onto
    the union of the bin edges)."""
    for dist in (a, b):
        if not dist.density:
            raise AnalysisError("size similarity needs binned size distributions")
    grid = np.union1d(a.bin_edges_nm, b.bin_edges_nm)
    ca, cb = _cdf_on(a, grid), _cdf_on(b, grid)
    pa, pb = np.diff(ca), np.diff(cb)
    overlap = float(np.minimum(pa, pb).sum())
    ks = float(np.max(np.abs(ca - cb)))
    centres = 0.5 * (grid[:-1] + grid[1:])
    keep_a, keep_b = pa > 0, pb > 0
    wasserstein = float(
        stats.wasserstein_distance(centres[keep_a], centres[keep_b], pa[keep_a], pb[keep_b])
    )
    return SizeSimilarity(
        overlap=overlap, ks_distance=ks, wasserstein_nm=wasserstein, similar=overlap >= min_overlap
    )


def western_electric(values: Sequence[float], center: float, sigma: float) -> list[Violation]:
    """Western Electric rules (Statistical Quality Control Handbook, 1956):

    1. one point beyond 3σ;
    2. two of three consecutive points beyond 2σ, same side;
    3. four of five consecutive points beyond 1σ, same side;
    4. eight consecutive points on the same side of the centre line.

    A violation is reported at the point that completes the pattern, with its window.
    """
    z = (np.asarray(values, dtype=float) - center) / sigma
    out: list[Violation] = []
    rules: list[tuple[int, int, int, float, str]] = [
        (2, 3, 2, 2.0, "2 of 3 beyond 2σ"),
        (3, 5, 4, 1.0, "4 of 5 beyond 1σ"),
        (4, 8, 8, 0.0, "8 in a row on one side"),
    ]
    for i in range(z.size):
        if abs(z[i]) > 3:
            out.append(Violation(rule=1, index=i, window=[i], description="beyond 3σ"))
        for rule, width, need, level, text in rules:
            if i + 1 < width:
                continue
            window = z[i + 1 - width : i + 1]
            for sign in (1, -1):
                beyond = sign * window > level
                # the completing point must itself be part of the pattern
                if beyond.sum() >= need and sign * z[i] > level:
                    side = "above" if sign > 0 else "below"
                    out.append(
                        Violation(
                            rule=rule,
                            index=i,
                            window=list(range(i + 1 - width, i + 1)),
                            description=f"{text} ({side})",
                        )
                    )
    return out


def control_chart(
    values: Sequence[float], labels: Sequence[str] | None = None, attribute: str = "value"
) -> ControlChart:
    """Individuals control chart with σ = MR̄ / 1.128 and Western Electric rules."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise AnalysisError(f"{attribute}: a control chart needs at least two lots")
    center = float(x.mean())
    sigma = float(np.mean(np.abs(np.diff(x))) / D2_MOVING_RANGE)
    if sigma == 0:
        sigma = float(x.std(ddof=1)) or abs(center) * 1e-12 or 1e-12
    return ControlChart(
        attribute=attribute,
        labels=list(labels) if labels is not None else [str(i + 1) for i in range(x.size)],
        values=x.tolist(),
        center=center,
        sigma=sigma,
        lcl=center - 3 * sigma,
        ucl=center + 3 * sigma,
        violations=western_electric(x, center, sigma),
    )


def capability(
    values: Sequence[float], lsl: float | None, usl: float | None, attribute: str = "value"
) -> Capability:
    """Cpk (σ within, from the moving range) and Ppk (σ overall) against the limits given."""
    x = np.asarray(values, dtype=float)
    if x.size < 2 or (lsl is None and usl is None):
        raise AnalysisError(f"{attribute}: capability needs two values and a limit")
    mean = float(x.mean())
    within = float(np.mean(np.abs(np.diff(x))) / D2_MOVING_RANGE)
    overall = float(x.std(ddof=1))

    def index(sigma: float) -> float:
        sides = [
            (usl - mean) if usl is not None else math.inf,
            (mean - lsl) if lsl is not None else math.inf,
        ]
        return min(sides) / (3 * sigma) if sigma > 0 else math.inf

    return Capability(attribute=attribute, lsl=lsl, usl=usl, cpk=index(within), ppk=index(overall))


# ---- lot-level attributes --------------------------------------------------------------------
def _log_concentration(data: LotData, replicates: bool) -> list[float]:
    if data.nta is None or not data.nta.concentration.particles_per_ml:
        return []
    if replicates:
        per_video = [
            v.concentration_per_ml for v in data.nta.per_video if v.valid and v.concentration_per_ml
        ]
        if len(per_video) >= 2:
            return [math.log(v) for v in per_video]
    return [math.log(data.nta.concentration.particles_per_ml)]


def _d50(data: LotData, replicates: bool) -> list[float]:
    if data.nta is None or data.nta.size.d50_nm is None:
        return []
    if replicates:
        per_video = [v.d50_nm for v in data.nta.per_video if v.valid and v.d50_nm]
        if len(per_video) >= 2:
            return per_video
    return [data.nta.size.d50_nm]


ATTRIBUTES: dict[str, Callable[[LotData, bool], list[float]]] = {
    "log_concentration": _log_concentration,
    "d50_nm": _d50,
}


def particles_per_unit(data: LotData) -> float | None:
    """Concentration × fill volume of a lot (``None`` if either is unknown)."""
    if data.nta is None or data.nta.concentration.particles_per_ml is None:
        return None
    if data.fill_volume_ml is None:
        return None
    return data.nta.concentration.particles_per_ml * data.fill_volume_ml


def mean_distribution(dists: Sequence[SizeDistribution]) -> SizeDistribution:
    """The average of several binned distributions on the union of their bin edges."""
    grid = np.unique(np.concatenate([d.bin_edges_nm for d in dists]))
    cdf = np.mean([_cdf_on(d, grid) for d in dists], axis=0)
    density = np.diff(cdf)
    return SizeDistribution(bin_edges_nm=grid.tolist(), density=(density / density.sum()).tolist())


def compare(
    test: LotData,
    references: Sequence[LotData],
    *,
    margin_sigma: float = 1.5,
    k: float = 3.0,
    alpha: float = 0.05,
) -> ComparabilityReport:
    """A lot against reference lots: TOST (margin ±``margin_sigma``·σ of the reference lots) and
    quality range (mean ± ``k``·σ) on log concentration and D50, and size similarity against
    the reference lots' mean distribution. ``comparable`` when every test passes."""
    if len(references) < 2:
        raise AnalysisError("comparability needs at least two reference lots")
    equivalence, ranges = [], []
    for name, values_of in ATTRIBUTES.items():
        ref = [values_of(r, False) for r in references]
        ref_values = [v[0] for v in ref if v]
        test_values = values_of(test, True)
        if not test_values:
            raise AnalysisError(f"lot {test.lot} has no {name.replace('_', ' ')}")
        if len(ref_values) < 2:
            raise AnalysisError(f"fewer than two reference lots have a {name.replace('_', ' ')}")
        sigma = float(np.std(ref_values, ddof=1))
        equivalence.append(
            equivalence_tost(
                test_values, ref_values, margin_sigma * sigma, attribute=name, alpha=alpha
            )
        )
        ranges.append(quality_range(ref_values, float(np.mean(test_values)), k=k, attribute=name))
    ref_dists = [r.nta.size for r in references if r.nta is not None and r.nta.size.density]
    size = None
    if test.nta is not None and test.nta.size.density and ref_dists:
        size = size_similarity(test.nta.size, mean_distribution(ref_dists))
    comparable = (
        all(e.equivalent for e in equivalence)
        and all(q.within for q in ranges)
        and (size is None or size.similar)
    )
    return ComparabilityReport(
        lot=test.lot,
        references=[r.lot for r in references],
        equivalence=equivalence,
        quality_ranges=ranges,
        size=size,
        comparable=comparable,
    )
