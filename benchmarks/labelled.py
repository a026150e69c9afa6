"""Labelled-fraction accuracy on simulated captures: ``python benchmarks/labelled.py CASE --seed N``.

Each case renders one sample twice (scatter, then fluorescence: the same particles on other
paths), plus the controls it needs, and runs :func:`exocheck.nta.labelled.labelled_fraction`.
The truth is the labelled share of the particles in the simulation box whose size lies in the
reported range, per class and overall. Cases:

``f2``, ``f10``, ``f40``
    EVs (lognormal, median 110 nm) with 2, 10 or 40 % carrying a membrane dye.
``size``
    Labelling proportional to membrane area (10 % at 110 nm).
``free``
    10 % labelled, plus free label (small, bright, no scatter) adding ≥ 50 % more fluorescent
    particles; a label-only control of the same free label is subtracted.
``bleach``
    10 % labelled with a 2 s bleaching half-life, against the same sample without bleaching
    (labelled D50 compared).

Videos are cached under ``--out`` (default ``bench-output/labelled``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from exocheck.nta.analyze import Conditions
from exocheck.nta.labelled import labelled_fraction
from exocheck.simulate import Population, SimulationParams, make_params, simulate

ROOT = Path(__file__).resolve().parent.parent


def _ev(fraction: float, per_ml: float, **label: Any) -> Population:
    return Population(
        name="EV",
        distribution="lognormal",
        diameter_nm=110,
        gsd=1.35,
        refractive_index=1.39,
        concentration_per_ml=per_ml,
        labelled_fraction=fraction,
        **label,
    )


FREE_LABEL = Population(
    name="free label",
    diameter_nm=15,
    cv=0.2,
    refractive_index=1.333,  # the medium's: scatters nothing
    concentration_per_ml=4e7,
    labelled_fraction=1.0,
    label="antibody",
    antibodies_mean=1.0,
    fluorophores_per_antibody=40.0,
)


def params(case: str, seed: int, frames: int) -> SimulationParams:
    """The simulated sample of a case."""
    per_ml = 1e9
    extra: dict[str, Any] = {}
    pops = [_ev({"f2": 0.02, "f40": 0.40}.get(case, 0.10), per_ml)]
    if case == "size":
        pops = [_ev(0.10, per_ml, labelled_fraction_exponent=2.0)]
    if case == "free":
        pops.append(FREE_LABEL)
    if case == "bleach":
        extra["bleach_half_life_s"] = 2.0
    return make_params(
        populations=pops,
        frames=frames,
        seed=seed,
        photons_per_nm2=200.0,
        filter_leakage=5e-4,
        fluorescence={"background_photons": 3.0},
        **extra,
    )


def _render(p: SimulationParams, folder: Path) -> dict[str, Any]:
    if not (folder / "truth.json").is_file():
        simulate(p, folder)
    return json.loads((folder / "truth.json").read_text())


def truth_by_class(truth: dict[str, Any], edges: np.ndarray) -> tuple[np.ndarray, float]:
    """Labelled share of the scattering particles in the box per class, and over the range."""
    box = truth["box_particles"]
    scatters = np.array([pop["scatters"] for pop in truth["populations"]])
    keep = scatters[np.asarray(box["population"])]
    d = np.asarray(box["diameter_nm"])[keep]
    lab = np.asarray(box["labelled"])[keep].astype(bool)
    cls = np.searchsorted(edges, d, side="right") - 1
    inside = (cls >= 0) & (cls < edges.size - 1)
    total = np.bincount(cls[inside], minlength=edges.size - 1)
    labelled = np.bincount(cls[inside], lab[inside], minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = labelled / total
    return per_class, float(labelled.sum() / max(total.sum(), 1))


def run(case: str, seed: int, frames: int, out: Path) -> dict[str, Any]:
    """Simulate (cached), analyse and compare one case; returns the figures."""
    p = params(case, seed, frames)
    base = out / f"{case}-{seed}-{frames}"
    truth = _render(p.for_mode("scatter"), base / "scatter")
    _render(p.for_mode("fluorescence"), base / "fluorescence")
    recordings = {
        "scatter": [base / "scatter" / "video.tif"],
        "fluorescence": [base / "fluorescence" / "video.tif"],
    }
    if case == "free":  # label in buffer, recorded like the sample
        control = p.model_copy(update={"populations": [FREE_LABEL], "seed": seed + 1000})
        _render(control.for_mode("fluorescence"), base / "label-only")
        recordings["label_only"] = [base / "label-only" / "video.tif"]
    conditions = Conditions(temperature_c=p.temperature_c, refractive_index=1.39)
    measurement, _ = labelled_fraction(recordings, conditions, sample=f"{case} seed {seed}")
    lab = measurement.labelled
    assert lab is not None
    edges = np.array([c.low_nm for c in lab.classes] + [lab.classes[-1].high_nm])
    per_class, overall = truth_by_class(truth, edges)
    figures = {
        "case": case,
        "seed": seed,
        "truth": overall,
        "estimate": lab.fraction,
        "ci": [lab.ci.low, lab.ci.high],
        "covered": lab.ci.low <= overall <= lab.ci.high,
        "within": abs(lab.fraction - overall) <= max(0.2 * overall, 0.01),
        "range_nm": [lab.low_nm, lab.high_nm],
        "classes": [
            {
                "nm": [c.low_nm, c.high_nm],
                "truth": None if np.isnan(t) else float(t),
                "estimate": c.fraction,
                "ci": None if c.ci is None else [c.ci.low, c.ci.high],
            }
            for c, t in zip(lab.classes, per_class, strict=True)
        ],
        "labelled_d50_nm": measurement.size.d50_nm,
        "bleach_half_life_s": measurement.diagnostics["bleach_half_life_s"],
        "warnings": measurement.warnings,
    }
    if case == "free":
        figures["free_label_extra"] = _free_label_share(base)
    return figures


def _free_label_share(base: Path) -> float:
    """Free label's fluorescent particles per labelled vesicle seen (visible at some time)."""
    truth = json.loads((base / "fluorescence" / "truth.json").read_text())
    free = sum(p["population"] == "free label" for p in truth["particles"])
    ev = sum(p["population"] == "EV" for p in truth["particles"])
    return free / max(ev, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["f2", "f10", "f40", "size", "free", "bleach"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output" / "labelled")
    args = parser.parse_args()
    figures = run(args.case, args.seed, args.frames, args.out)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
