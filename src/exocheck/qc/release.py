"""Release decisions: hold one lot's data against a specification.

Each criterion gives ``pass``, ``fail``, ``inconclusive`` (the measurement's uncertainty interval
straddles a limit, so the data cannot decide) or ``missing`` (no data for it). The lot decision is

* ``does-not-conform`` when any criterion fails,
* else ``incomplete`` when any is missing,
* else ``inconclusive`` when any is inconclusive,
* else ``conforms``.

A ``labelled_fraction`` criterion is judged the same way: it passes only when the whole 95 %
interval of the labelled fraction lies at or above the minimum. Labelled-fraction and
fluorescence-mode records never stand for the lot's particle concentration or size
(:func:`~exocheck.qc.lotdata.is_particle_measurement`).

A concentration that cannot bear a decision (nominal detection volume without a bead calibration,
a calibration made on other optics, or one used past its validity) makes every criterion computed from it ``inconclusive``,
with the reason in the criterion's detail (:func:`concentration_caveat`).

Everything here is a pure function of :class:`~exocheck.qc.lotdata.LotData` and
:class:`~exocheck.qc.specification.Specification`; signing a decision is the store's job.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from exocheck.errors import AnalysisError
from exocheck.qc.evidence import CALIBRATION_CODES, CODES, lot_caveats, record_caveats
from exocheck.qc.lotdata import LotData
from exocheck.qc.specification import (
    LabelClaimCriterion,
    LabelledFractionCriterion,
    LimitCriterion,
    MisevCriterion,
    PresenceCriterion,
    PurityCriterion,
    RangeCriterion,
    SizeFractionCriterion,
    Specification,
)
from exocheck.records import LabelledFraction, Measurement

Result = Literal["pass", "fail", "inconclusive", "missing"]
Decision = Literal["conforms", "does-not-conform", "inconclusive", "incomplete"]

#: MISEV2018/2023 marker categories (Théry et al. 2018, Table 3; Welsh et al. 2024).
TRANSMEMBRANE = {
    "cd9",
    "cd63",
    "cd81",
    "cd82",
    "cd47",
    "cd29",
    "cd44",
    "cd73",
    "cd90",
    "itgb1",
    "itga",
    "lamp1",
    "lamp2",
    "epcam",
    "mhc-i",
    "hla-abc",
    "tspan",
}
CYTOSOLIC = {
    "tsg101",
    "alix",
    "pdcd6ip",
    "syntenin",
    "syntenin-1",
    "sdcbp",
    "flotillin-1",
    "flot1",
    "flotillin-2",
    "flot2",
    "hsp70",
    "hsc70",
    "hspa8",
    "annexin",
    "anxa1",
    "anxa2",
    "anxa5",
    "vps4",
    "chmp4",
}
NEGATIVE = {
    "calnexin",
    "canx",
    "gm130",
    "golga2",
    "apoa1",
    "apoa2",
    "apob",
    "albumin",
    "alb",
    "histone",
    "histones",
    "cytochrome c",
    "cyc1",
    "grp94",
    "hsp90b1",
    "bip",
    "hspa5",
    "umod",
    "tamm-horsfall",
}

#: Webber & Clayton (J Extracell Vesicles 2013, 2:19861): particles per µg protein.
PURITY_HIGH = 3e10
PURITY_LOW = 2e9
PURITY_IMPURE = 1.5e9


class CriterionResult(BaseModel):
    """The outcome of one criterion."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    result: Result
    value: float | str | None = Field(description="the measured value (None when missing)")
    limit: str = Field(description="the acceptance limit, in words")
    unit: str | None = None
    interval: tuple[float, float] | None = Field(
        default=None, description="uncertainty interval of the value (95 %)"
    )
    detail: str | None = None

    @property
    def display_value(self) -> str:
        if self.value is None:
            return "—"
        if isinstance(self.value, str):
            return self.value
        if self.unit == "fraction":  # shown as the percentage its limit is written in
            text = f"{percent(self.value)} %"
            if self.interval is not None:
                text += f" ({percent(self.interval[0])}–{percent(self.interval[1])} %)"
            return text
        text = fmt(self.value)
        if self.interval is not None:
            text += f" ({fmt(self.interval[0])}–{fmt(self.interval[1])})"
        return f"{text} {self.unit}".strip() if self.unit else text


class CaveatResult(BaseModel):
    """A warning of the evidence (:mod:`exocheck.qc.evidence`) and whether it was accepted."""

    model_config = ConfigDict(extra="forbid")

    code: str
    detail: str
    undermines: list[str]
    criteria: list[str] = Field(description="the criteria whose numbers it undermines")
    accepted: str | None = Field(
        default=None, description="who accepted it as a deviation, and why (None: open)"
    )


class ReleaseResult(BaseModel):
    """A lot held against a specification."""

    model_config = ConfigDict(extra="forbid")

    lot: str
    specification: str
    decision: Decision
    criteria: list[CriterionResult]
    caveats: list[CaveatResult] = Field(
        default_factory=list,
        description="warnings of the evidence that undermine numbers the criteria use",
    )
    evaluated_at: datetime = Field(default_factory=lambda: datetime.now().astimezone())

    def summary(self) -> dict:
        """The ``exocheck release --json`` object."""
        out = {
            "lot": self.lot,
            "decision": self.decision,
            "criteria": [
                {"name": c.name, "result": c.result, "value": c.value, "limit": c.limit}
                for c in self.criteria
            ],
        }
        if self.caveats:
            out["caveats"] = [
                {"code": c.code, "detail": c.detail, "accepted": c.accepted} for c in self.caveats
            ]
        return out

    @property
    def missing(self) -> list[str]:
        """The criteria that still lack data."""
        return [c.name for c in self.criteria if c.result == "missing"]

    @property
    def open_caveats(self) -> list[CaveatResult]:
        """Caveats not accepted as deviations."""
        return [c for c in self.caveats if c.accepted is None]


def fmt(value: float) -> str:
    """Three significant figures, without an exponent from 0.001 to 99 900 (1060, not 1.06e+03);
    scientific notation for larger or smaller magnitudes."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{float(f'{value:.3g}'):g}"
    return f"{value:.2e}"


def percent(fraction: float) -> str:
    """A fraction (0-1) as a percentage: one decimal from 1 % on, two significant figures
    below (0.52, not 0.5)."""
    value = 100 * fraction
    if value == 0 or abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


#: Quantities computed from the particle concentration.
CONCENTRATION_QUANTITIES = frozenset(
    {"concentration.particles_per_ml", "particles_per_unit", "particles_per_ug"}
)


def concentration_caveat(data: LotData) -> str | None:
    """Why the lot's particle concentration cannot decide a criterion on calibration grounds, or
    ``None`` when it can (see :func:`exocheck.qc.evidence.record_caveats`)."""
    if data.nta is None:
        return None
    for caveat in record_caveats(data.nta):
        if caveat.code in CALIBRATION_CODES:
            return caveat.detail
    return None


def _uses_concentration(criterion) -> bool:
    if isinstance(criterion, LabelClaimCriterion | PurityCriterion):
        return True
    return getattr(criterion, "quantity", None) in CONCENTRATION_QUANTITIES


def quantities_used(criterion) -> frozenset[str]:
    """Which of the particle measurement's numbers (``concentration``, ``size``) a criterion
    is computed from."""
    used = set()
    if _uses_concentration(criterion):
        used.add("concentration")
    if isinstance(criterion, SizeFractionCriterion) or str(
        getattr(criterion, "quantity", "")
    ).startswith("size."):
        used.add("size")
    return frozenset(used)


def decide(results: list[CriterionResult]) -> Decision:
    """The lot decision from its criterion results (see the module docstring)."""
    outcomes = {r.result for r in results}
    if "fail" in outcomes:
        return "does-not-conform"
    if "missing" in outcomes:
        return "incomplete"
    if "inconclusive" in outcomes:
        return "inconclusive"
    return "conforms"


def _judge(
    value: float,
    interval: tuple[float, float] | None,
    low: float | None,
    high: float | None,
    strict_low: bool = False,
    strict_high: bool = False,
) -> Result:
    """Pass when the whole interval lies inside the acceptance region, fail when it lies wholly
    outside, inconclusive otherwise. Without an interval the point value decides."""

    def inside(x: float) -> bool:
        ok_low = low is None or (x > low if strict_low else x >= low)
        ok_high = high is None or (x < high if strict_high else x <= high)
        return ok_low and ok_high

    if interval is None:
        return "pass" if inside(value) else "fail"
    lo, hi = sorted(interval)
    if inside(lo) and inside(hi):
        return "pass"
    # the interval misses the acceptance region entirely
    if (high is not None and (lo >= high if strict_high else lo > high)) or (
        low is not None and (hi <= low if strict_low else hi < low)
    ):
        return "fail"
    return "inconclusive"


def quantity_value(data: LotData, quantity: str) -> tuple[float | None, tuple[float, float] | None]:
    """A named quantity of a lot with its 95 % interval where one is known."""
    nta = data.nta
    if quantity.startswith("size."):
        if nta is None:
            return None, None
        stat = quantity.removeprefix("size.")
        value = getattr(nta.size, stat)
        ci = nta.size.ci.get(stat)
        return value, (ci.low, ci.high) if ci is not None else None
    if quantity == "concentration.particles_per_ml":
        if nta is None or nta.concentration.particles_per_ml is None:
            return None, None
        ci = nta.concentration.ci
        return nta.concentration.particles_per_ml, (ci.low, ci.high) if ci else None
    if quantity == "particles_per_unit":
        conc, ci = quantity_value(data, "concentration.particles_per_ml")
        if conc is None or data.fill_volume_ml is None:
            return None, None
        fill = data.fill_volume_ml
        return conc * fill, (ci[0] * fill, ci[1] * fill) if ci else None
    if quantity == "protein.ug_per_ml":
        if data.protein is None:
            return None, None
        return data.protein.ug_per_ml, _protein_interval(data)
    if quantity == "particles_per_ug":
        conc, ci = quantity_value(data, "concentration.particles_per_ml")
        if conc is None or data.protein is None:
            return None, None
        protein = data.protein.ug_per_ml
        p_int = _protein_interval(data)
        if ci is None and p_int is None:
            return conc / protein, None
        c_lo, c_hi = ci if ci else (conc, conc)
        p_lo, p_hi = p_int if p_int else (protein, protein)
        return conc / protein, (c_lo / p_hi, c_hi / max(p_lo, 1e-300))
    if quantity.startswith("safety."):
        value = data.safety.get(quantity.removeprefix("safety."))
        return (value, None) if isinstance(value, float) else (None, None)
    raise ValueError(f"unknown quantity {quantity!r}")


def _protein_interval(data: LotData) -> tuple[float, float] | None:
    protein = data.protein
    if protein is None or protein.sd_ug_per_ml is None:
        return None
    half = 1.96 * protein.sd_ug_per_ml
    return max(protein.ug_per_ml - half, 1e-12), protein.ug_per_ml + half


def size_fraction(data: LotData, low_nm: float, high_nm: float) -> float | None:
    """Number fraction of particles between ``low_nm`` and ``high_nm``, from the binned density
    (uniform within a bin, i.e. the CDF interpolated linearly across bins)."""
    if data.nta is None or not data.nta.size.density:
        return None
    edges = np.asarray(data.nta.size.bin_edges_nm, dtype=float)
    cdf = np.concatenate([[0.0], np.cumsum(data.nta.size.density)])
    at = np.interp([low_nm, high_nm], edges, cdf, left=0.0, right=1.0)
    return float(np.clip(at[1] - at[0], 0.0, 1.0))


#: Size edges (nm) closer than this count as the same edge.
_EDGE_NM = 1e-3


@dataclass(frozen=True)
class LabelledEstimate:
    """The labelled fraction of a size range, from one labelled-fraction record."""

    fraction: float
    interval: tuple[float, float] | None
    low_nm: float
    high_nm: float
    labelled_per_ml: float
    total_per_ml: float
    classes: int = 0  # 0: the record's overall value; else the number of classes combined
    note: str | None = None


def _same_edge(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=_EDGE_NM)


def _half_width_sd(low: float, high: float, level: float) -> float:
    """Standard deviation implied by a two-sided interval at ``level`` (normal approximation)."""
    if not 0 < level < 1:
        raise AnalysisError(f"an interval's level must lie between 0 and 1, not {level:g}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return abs(high - low) / (2 * z)


def labelled_fraction(
    labelled: LabelledFraction, size_range_nm: tuple[float, float] | None = None
) -> LabelledEstimate:
    """The labelled fraction of ``size_range_nm`` (default: the record's own range) with its
    95 % interval.

    The record's overall fraction and interval are used as they are when the range is the
    record's. Otherwise the size classes lying within the range must cover it exactly (their
    edges at its ends, no gaps); they are combined as ``f = sum(labelled) / sum(total)``,
    i.e. the mean of the class fractions ``f_i`` weighted by their total concentrations
    ``w_i = total_i / total``. Its interval comes from the delta method on the log scale: each
    class's standard deviation is read from its interval's width (normal approximation at the
    interval's level), ``var(f) = sum(w_i**2 * sd_i**2)`` with the classes taken as independent
    and the total concentrations as fixed weights (the scatter channel counts many more tracks
    than the fluorescence channel), and the interval is ``f * exp(±1.96 * sd_f / f)``, which
    stays positive and widens upwards as count-based intervals do. The class estimates come from
    one deconvolution of the size distribution, which makes neighbouring classes correlated
    (mostly negatively: a particle assigned to one class is not in the next); the interval is
    therefore approximate, usually somewhat wide rather than narrow.

    Raises
    ------
    AnalysisError
        When the range is not the record's and its classes do not cover it exactly, or the
        classes in it hold no particles (one line, naming the classes' edges).
    """
    if size_range_nm is None or (
        _same_edge(size_range_nm[0], labelled.low_nm)
        and _same_edge(size_range_nm[1], labelled.high_nm)
    ):
        ci = labelled.ci
        return LabelledEstimate(
            fraction=labelled.fraction,
            interval=(ci.low, ci.high),
            low_nm=labelled.low_nm,
            high_nm=labelled.high_nm,
            labelled_per_ml=labelled.labelled_per_ml,
            total_per_ml=labelled.total_per_ml,
        )
    low, high = size_range_nm
    span = f"{low:g}–{high:g} nm"
    if low < labelled.low_nm - _EDGE_NM or high > labelled.high_nm + _EDGE_NM:
        raise AnalysisError(
            f"{span} reaches outside the record's range {labelled.low_nm:g}–{labelled.high_nm:g} nm"
        )
    classes = sorted(labelled.classes, key=lambda c: c.low_nm)
    if not classes:
        raise AnalysisError(
            f"the record has no size classes; only its own range "
            f"{labelled.low_nm:g}–{labelled.high_nm:g} nm can be evaluated"
        )
    inside = [c for c in classes if c.low_nm >= low - _EDGE_NM and c.high_nm <= high + _EDGE_NM]
    contiguous = all(_same_edge(a.high_nm, b.low_nm) for a, b in itertools.pairwise(inside))
    if (
        not inside
        or not contiguous
        or not _same_edge(inside[0].low_nm, low)
        or not _same_edge(inside[-1].high_nm, high)
    ):
        edges = sorted({e for c in classes for e in (c.low_nm, c.high_nm)})
        shown = ", ".join(f"{e:g}" for e in edges)
        raise AnalysisError(
            f"the record's size classes (edges {shown} nm) do not cover {span} exactly; "
            "give a range on class edges"
        )
    total = sum(c.total_per_ml for c in inside)
    labelled_sum = sum(c.labelled_per_ml for c in inside)
    if not total > 0:
        raise AnalysisError(f"the record's classes in {span} hold no particles")
    fraction = labelled_sum / total
    interval: tuple[float, float] | None = None
    note = None
    without = [c for c in inside if c.ci is None]
    if without:
        c = without[0]
        note = f"class {c.low_nm:g}–{c.high_nm:g} nm has no interval: the value alone decides"
    else:
        sd = math.sqrt(
            sum(
                (c.total_per_ml / total) ** 2 * _half_width_sd(c.ci.low, c.ci.high, c.ci.level) ** 2
                for c in inside
            )
        )
        z = NormalDist().inv_cdf(0.975)
        if fraction > 0:
            low_f, high_f = (
                fraction * math.exp(-z * sd / fraction),
                fraction * math.exp(z * sd / fraction),
            )
        else:
            low_f, high_f = 0.0, z * sd
        interval = (max(low_f, 0.0), min(high_f, 1.0))
    return LabelledEstimate(
        fraction=fraction,
        interval=interval,
        low_nm=low,
        high_nm=high,
        labelled_per_ml=labelled_sum,
        total_per_ml=total,
        classes=len(inside),
        note=note,
    )


#: Input roles of a labelled-fraction record that are the sample itself, not a control.
SAMPLE_ROLES = frozenset({"scatter", "fluorescence"})


def role_name(name: str) -> str:
    """An input role as people write it: ``label_only`` or ``control_label_only`` ->
    ``label-only``."""
    text = name.strip()
    for prefix in ("control_", "control-", "control "):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    return text.replace("_", "-")


def is_control_role(name: str) -> bool:
    """Whether an input role of a labelled-fraction record is a control (unstained, label-only,
    isotype, detergent, ...), not the sample's scatter or fluorescence recording."""
    return role_name(name).lower() not in SAMPLE_ROLES


def controls_line(labelled: LabelledFraction) -> str:
    """The controls a labelled fraction rests on, in one short line: those subtracted (with what
    each took away) and any other control recorded, or that none was subtracted."""
    subtracted = {role_name(k): v for k, v in labelled.subtracted_per_ml.items()}
    parts = [f"{k} {fmt(v)}/mL" for k, v in subtracted.items()]
    text = f"controls subtracted: {', '.join(parts)}" if parts else "no control subtracted"
    others = [
        role_name(k)
        for k in labelled.inputs
        if is_control_role(k) and role_name(k) not in subtracted
    ]
    if others:
        text += f"; also recorded: {', '.join(others)}"
    return text


def _labelled_detail(record: Measurement, estimate: LabelledEstimate, records: int) -> str:
    labelled = record.labelled
    assert labelled is not None
    where = f"{estimate.low_nm:g}–{estimate.high_nm:g} nm"
    if estimate.classes:
        where += f" ({estimate.classes} size classes combined; approximate interval)"
    parts = [f"{labelled.marker or 'marker'}-labelled, {where}", controls_line(labelled)]
    if estimate.note:
        parts.append(estimate.note)
    if records > 1:
        parts.append(f"newest of {records} records")
    if record.warnings:
        parts.append("record warnings: " + "; ".join(record.warnings))
    return "; ".join(parts)


def purity_class(particles_per_ug: float) -> str:
    """Webber & Clayton (2013) purity class of a particles-per-µg-protein ratio."""
    if particles_per_ug >= PURITY_HIGH:
        return "high purity"
    if particles_per_ug >= PURITY_LOW:
        return "low purity"
    if particles_per_ug < PURITY_IMPURE:
        return "impure"
    return "between low purity and impure"


def misev_completeness(data: LotData) -> tuple[float, list[str]]:
    """MISEV2023 characterisation completeness: the fraction of four requirements met, and the
    requirements not met.

    1. at least two quantification methods (particle count and total protein);
    2. at least three positive (EV) markers present;
    3. among them at least one transmembrane/GPI-anchored and one cytosolic protein;
    4. at least one negative (non-EV) marker tested.
    """
    methods = int(data.nta is not None and data.nta.concentration.particles_per_ml is not None)
    methods += int(data.protein is not None)
    present = {k.strip().lower() for k, v in data.markers.items() if v == "present"}
    tested = {k.strip().lower() for k in data.markers}

    def member(name: str, group: set[str]) -> bool:
        return name in group or any(name.startswith(g) for g in group if len(g) >= 4)

    positive = {m for m in present if not member(m, NEGATIVE)}
    unmet = []
    if methods < 2:
        unmet.append("≥2 quantification methods")
    if len(positive) < 3:
        unmet.append("≥3 positive markers")
    if not (
        any(member(m, TRANSMEMBRANE) for m in positive)
        and any(member(m, CYTOSOLIC) for m in positive)
    ):
        unmet.append("a transmembrane and a cytosolic marker")
    if not any(member(m, NEGATIVE) for m in tested):
        unmet.append("≥1 negative marker")
    return (4 - len(unmet)) / 4, unmet


def _range_limit(low: float | None, high: float | None, unit: str) -> str:
    if low is not None and high is not None:
        text = f"{fmt(low)}–{fmt(high)}"
    elif low is not None:
        text = f"≥ {fmt(low)}"
    else:
        text = f"≤ {fmt(high)}"  # type: ignore[arg-type]
    return f"{text} {unit}".strip()


def evaluate_criterion(criterion, data: LotData) -> CriterionResult:
    """Evaluate one criterion against one lot."""
    base = {"name": criterion.name, "kind": criterion.kind}
    if isinstance(criterion, RangeCriterion | LimitCriterion):
        unit = criterion.display_unit
        if isinstance(criterion, RangeCriterion):
            low, high, s_low, s_high = criterion.min, criterion.max, False, False
            limit = _range_limit(low, high, unit)
        else:
            op, bound = criterion.operator
            low = bound if op in (">", "≥") else None
            high = bound if op in ("<", "≤") else None
            s_low, s_high = op == ">", op == "<"
            limit = f"{op} {fmt(bound)} {unit}".strip()
        value, interval = quantity_value(data, criterion.quantity)
        if value is None:
            return CriterionResult(
                **base,
                result="missing",
                value=None,
                limit=limit,
                unit=unit,
                detail=f"no {criterion.quantity}",
            )
        return CriterionResult(
            **base,
            result=_judge(value, interval, low, high, s_low, s_high),
            value=float(value),
            limit=limit,
            unit=unit,
            interval=interval,
        )

    if isinstance(criterion, SizeFractionCriterion):
        low_nm, high_nm = criterion.window_nm
        limit = f"≥ {100 * criterion.min_fraction:g} % in {low_nm:g}–{high_nm:g} nm"
        fraction = size_fraction(data, low_nm, high_nm)
        if fraction is None:
            return CriterionResult(
                **base,
                result="missing",
                value=None,
                limit=limit,
                detail="no binned size distribution",
            )
        result = "pass" if fraction >= criterion.min_fraction - 1e-12 else "fail"
        return CriterionResult(
            **base, result=result, value=round(fraction, 6), limit=limit, unit="fraction"
        )

    if isinstance(criterion, LabelClaimCriterion):
        tol = criterion.tolerance_percent / 100
        unit = f"particles/{data.unit_name}"
        claim = data.particles_per_unit_claim
        if claim is None:
            return CriterionResult(
                **base,
                result="missing",
                value=None,
                limit=f"label claim ± {criterion.tolerance_percent:g} %",
                detail="the product has no label claim",
            )
        low, high = claim * (1 - tol), claim * (1 + tol)
        limit = f"{fmt(claim)} ± {criterion.tolerance_percent:g} % ({fmt(low)}–{fmt(high)}) {unit}"
        value, interval = quantity_value(data, "particles_per_unit")
        if value is None:
            return CriterionResult(
                **base,
                result="missing",
                value=None,
                limit=limit,
                unit=unit,
                detail="no particle concentration or fill volume",
            )
        return CriterionResult(
            **base,
            result=_judge(value, interval, low, high),
            value=float(value),
            limit=limit,
            unit=unit,
            interval=interval,
            detail=f"{value / claim:.0%} of label claim",
        )

    if isinstance(criterion, PresenceCriterion):
        want = "present" if criterion.expected in ("present", "positive") else "absent"
        limit = f"{', '.join(criterion.analytes)}: {criterion.expected}"
        readings: dict[str, str | None] = {}
        lookup = {k.lower(): v for k, v in data.markers.items()}
        lookup.update({k.lower(): v for k, v in data.safety.items() if isinstance(v, str)})
        for analyte in criterion.analytes:
            readings[analyte] = lookup.get(analyte.lower())
        words = (
            {"present": "positive", "absent": "negative"}
            if criterion.expected in ("positive", "negative")
            else {}
        )
        shown = "; ".join(
            f"{k} {words.get(v, v) if v else 'not tested'}" for k, v in readings.items()
        )
        if any(v is None for v in readings.values()):
            wrong = [k for k, v in readings.items() if v is not None and v != want]
            result: Result = "fail" if wrong else "missing"
        else:
            result = "pass" if all(v == want for v in readings.values()) else "fail"
        return CriterionResult(**base, result=result, value=shown, limit=limit)

    if isinstance(criterion, PurityCriterion):
        limit = f"≥ {fmt(criterion.min_particles_per_ug)} particles/µg"
        value, interval = quantity_value(data, "particles_per_ug")
        if value is None:
            return CriterionResult(
                **base,
                result="missing",
                value=None,
                limit=limit,
                unit="particles/µg",
                detail="needs concentration and protein",
            )
        return CriterionResult(
            **base,
            result=_judge(value, interval, criterion.min_particles_per_ug, None),
            value=float(value),
            limit=limit,
            unit="particles/µg",
            interval=interval,
            detail=f"Webber & Clayton class: {purity_class(value)}",
        )

    if isinstance(criterion, LabelledFractionCriterion):
        return _evaluate_labelled(criterion, data, base)

    if isinstance(criterion, MisevCriterion):
        limit = f"score ≥ {criterion.min_score:g}"
        absent = [
            what
            for what, have in (
                ("a particle concentration", data.nta is not None),
                ("a protein assay", data.protein is not None),
                ("a marker panel", bool(data.markers)),
            )
            if not have
        ]
        if absent:  # scored once each kind of data it reads has been entered
            return CriterionResult(
                **base,
                result="missing",
                value=None,
                limit=limit,
                detail="awaiting " + ", ".join(absent),
            )
        score, unmet = misev_completeness(data)
        result = "pass" if score >= criterion.min_score - 1e-12 else "fail"
        detail = "missing: " + "; ".join(unmet) if unmet else "all four requirements met"
        return CriterionResult(**base, result=result, value=score, limit=limit, detail=detail)

    raise TypeError(f"unsupported criterion {criterion!r}")


def _evaluate_labelled(
    criterion: LabelledFractionCriterion, data: LotData, base: dict[str, str]
) -> CriterionResult:
    """A ``labelled_fraction`` criterion: the newest labelled-fraction record for the marker,
    judged with its interval (pass only when the whole interval is at or above the minimum)."""
    marker = criterion.marker
    where = ""
    if criterion.size_range_nm is not None:
        where = f", {criterion.size_range_nm[0]:g}–{criterion.size_range_nm[1]:g} nm"
    limit = f"≥ {criterion.min_percent:g} % {marker}-labelled{where}"
    records = [
        r
        for r in data.labelled_records
        if r.labelled is not None and (r.labelled.marker or "").strip().lower() == marker.lower()
    ]
    if not records:
        others = sorted({r.labelled.marker or "no marker named" for r in data.labelled_records})
        detail = f"no labelled-fraction record for {marker}"
        if others:
            detail += f" (the lot has: {', '.join(others)})"
        return CriterionResult(
            **base, result="missing", value=None, limit=limit, unit="fraction", detail=detail
        )
    record = records[-1]
    try:
        estimate = labelled_fraction(record.labelled, criterion.size_range_nm)
    except AnalysisError as exc:
        return CriterionResult(
            **base,
            result="missing",
            value=None,
            limit=limit,
            unit="fraction",
            detail=f"not evaluable: {exc}",
        )
    return CriterionResult(
        **base,
        result=_judge(estimate.fraction, estimate.interval, criterion.min_percent / 100, None),
        value=float(estimate.fraction),
        limit=limit,
        unit="fraction",
        interval=estimate.interval,
        detail=_labelled_detail(record, estimate, len(records)),
    )


def evaluate(spec: Specification, data: LotData) -> ReleaseResult:
    """Hold a lot against a specification: one result per criterion and the lot decision.

    A criterion computed from a number the evidence undermines (:mod:`exocheck.qc.evidence`:
    failed videos, vendor "Unreliable" flags, no recorded dilution, mixed samples, no bead
    calibration or an expired one, capture settings other than the specification's, a
    measurement not made under the specification's method) is *inconclusive*, naming the
    caveat, unless the caveat was accepted as a deviation (``data.accepted_deviations``).
    """
    results = [evaluate_criterion(c, data) for c in spec.criteria]
    for r in results:  # JSON has no NaN: a non-finite value is treated as missing
        if isinstance(r.value, float) and not math.isfinite(r.value):
            r.value, r.result = None, "missing"
    caveats = lot_caveats(data, dict(spec.capture), spec.method)
    accepted = data.accepted_deviations
    caveat_results = []
    for caveat in caveats:
        hit = [
            r.name
            for c, r in zip(spec.criteria, results, strict=True)
            if caveat.undermines & quantities_used(c)
        ]
        caveat_results.append(
            CaveatResult(
                code=caveat.code,
                detail=caveat.detail,
                undermines=sorted(caveat.undermines),
                criteria=hit,
                accepted=accepted.get(caveat.code),
            )
        )
    for c, r in zip(spec.criteria, results, strict=True):
        used = quantities_used(c)
        open_ = [k for k in caveats if k.undermines & used and k.code not in accepted]
        taken = [k for k in caveats if k.undermines & used and k.code in accepted]
        notes = []
        if open_ and r.result in ("pass", "fail"):
            r.result = "inconclusive"
            notes = [k.detail for k in open_]
        if taken:
            notes += [f"deviation accepted: {CODES.get(k.code, k.code)}" for k in taken]
        if notes:
            r.detail = "; ".join([*notes, r.detail] if r.detail else notes)
    return ReleaseResult(
        lot=data.lot,
        specification=spec.label,
        decision=decide(results),
        criteria=results,
        caveats=caveat_results,
    )
