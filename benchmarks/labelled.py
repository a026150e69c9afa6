"""Labelled-fraction accuracy on simulated captures: ``python benchmarks/labelled.py CASE --seed N``.

Each case renders one sample twice (scatter, then fluorescence: the same particles on other
paths) at several positions, with an unstained control in fluorescence (the filter lets 0.05 % of
the scattered light through) and the controls the case needs, and runs :func:`exocheck.nta.labelled.labelled_fraction`.
The truth is the labelled share of the particles in the simulation box whose size lies in the
reported range, per class and overall. Cases:

``f2``, ``f10``, ``f40``
    EVs (lognormal, median 110 nm) with 2, 10 or 40 % carrying a membrane dye.
``size``
    Labelling proportional to membrane area (10 % at 110 nm).
``free``
    10 % labelled, plus free label (antibody aggregates sized like small vesicles, bright, no
    scatter) adding ≥ 50 % more fluorescent particles; a label-only control of the same free
    label is subtracted.
``bleach``
    10 % labelled with a 2 s bleaching half-life, against the same sample without bleaching
    (labelled D50 compared).

Videos are cached under ``--out`` (default ``bench-output/labelled``): about 0.2 GB per
capture, so 0.5-2 GB per case and seed (about 8 GB for ``free``, at 11 positions).
``--drop-videos`` removes them once analysed; ``--keep-analysis`` keeps the analysed recordings
(15-110 MB per case and seed) and counts from them on the next run of the same case, row and seed.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exocheck.nta.analyze import AnalysisSettings, Conditions, analyze
from exocheck.nta.fluorescence import DepthModel
from exocheck.nta.labelled import fraction_from_recordings, labelled_fraction
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


FREE_LABEL = Population(  # antibody aggregates: bright, sized like small vesicles, no scatter
    name="free label",
    diameter_nm=110,
    cv=0.3,
    refractive_index=1.333,  # the medium's: scatters nothing
    concentration_per_ml=8e7,
    labelled_fraction=1.0,
    label="antibody",
    antibodies_mean=1.0,
    fluorophores_per_antibody=40.0,
)


MATRIX: dict[str, dict[str, Any]] = {
    "base": {},
    "thin-sheet": {"sheet_fwhm_um": 4.71},
    "thick-sheet": {"sheet_fwhm_um": 14.0},
    "short-defocus": {"defocus_um": 2.0},
    "long-defocus": {"defocus_um": 5.0},
    "noisy-camera": {"read_noise_counts": 4.0, "fluorescence": {"background_photons": 12.0}},
    "bleach-1s": {"bleach_half_life_s": 1.0},
    "bleach-5s": {"bleach_half_life_s": 5.0},
    "leaky-filter": {"filter_leakage": 2e-3},
    "flat-top": {"sheet_profile": "flat-top"},
}
"""Rows of the robustness matrix: simulator settings that differ from the case's (the sample stays
the same)."""

STATED = {"measured": (1.0, 1.0), "true": (1.0, 1.0), "over": (1.3, 0.7), "under": (0.7, 1.3)}
"""Optics given to the analysis: ``measured``, the profile measured on the scatter tracks (the
default; the stated optics are then not used); or the stated optics alone (``--profile stated``):
as simulated, ``over`` (sheet 30 % over, defocus length 30 % under) or ``under`` (the reverse).
Both lengths misstated by the same factor would only scale the profile, which cancels in the
fraction; misstated apart, they change its shape."""


def params(case: str, seed: int, frames: int, variant: str = "base") -> SimulationParams:
    """The simulated sample of a case, with a robustness-matrix row's settings."""
    per_ml = 1e9
    extra: dict[str, Any] = {}
    pops = [_ev({"f2": 0.02, "f40": 0.40}.get(case, 0.10), per_ml)]
    if case == "size":
        pops = [_ev(0.10, per_ml, labelled_fraction_exponent=2.0)]
    if case == "free":
        pops.append(FREE_LABEL)
    if case == "bleach":
        extra["bleach_half_life_s"] = 2.0
    settings: dict[str, Any] = {
        "photons_per_nm2": 200.0,
        "filter_leakage": 5e-4,
        "fluorescence": {"background_photons": 3.0},
    }
    settings |= extra | MATRIX[variant]
    return make_params(populations=pops, frames=frames, seed=seed, **settings)


def _render(p: SimulationParams, folder: Path) -> dict[str, Any]:
    if not (folder / "truth.json").is_file():
        simulate(p, folder)
    return json.loads((folder / "truth.json").read_text())


def truth_by_class(
    truths: dict[str, Any] | list[dict[str, Any]], edges: np.ndarray
) -> tuple[np.ndarray, float]:
    """Labelled share of the scattering particles in the boxes per class, and over the range."""
    ds, labs = [], []
    for truth in truths if isinstance(truths, list) else [truths]:
        box = truth["box_particles"]
        scatters = np.array([pop["scatters"] for pop in truth["populations"]])
        keep = scatters[np.asarray(box["population"])]
        ds.append(np.asarray(box["diameter_nm"])[keep])
        labs.append(np.asarray(box["labelled"])[keep].astype(bool))
    d, lab = np.concatenate(ds), np.concatenate(labs)
    cls = np.searchsorted(edges, d, side="right") - 1
    inside = (cls >= 0) & (cls < edges.size - 1)
    total = np.bincount(cls[inside], minlength=edges.size - 1)
    labelled = np.bincount(cls[inside], lab[inside], minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = labelled / total
    return per_class, float(labelled.sum() / max(total.sum(), 1))


POSITIONS = {"f2": 6, "free": 11}
"""Captures per channel (positions of the cell; a ZetaView records 11 by default): one simulation
box holds about 300 vesicles, so a 2 % fraction needs several boxes to hold more than a handful
of labelled ones, and a subtracted control adds its own counting noise to the sample's."""


def run(
    case: str,
    seed: int,
    frames: int,
    out: Path,
    positions: int | None = None,
    variant: str = "base",
    stated: Sequence[str] = ("measured",),
    keep_videos: bool = True,
    keep_analysis: bool = False,
) -> list[dict[str, Any]]:
    """Simulate (cached), analyse and compare one case; the figures for each optics statement.

    With ``keep_analysis`` the analysed recordings and the truths are kept in a pickle beside
    the videos and reused by later runs of the same case, row and seed (only the counting is
    then redone, for example with another depth profile).
    """
    n_pos = positions or POSITIONS.get(case, 3)
    kept = out / f"{case}-{variant}-{seed}-{frames}-{n_pos}.analysis.pkl"
    if keep_analysis and kept.is_file():
        with kept.open("rb") as fh:
            p, truths, done = pickle.load(fh)  # written by this benchmark
        return _count(done, truths, p, case, variant, seed, frames, n_pos, stated, out)[:-1]
    recordings: dict[str, list[Path]] = {"scatter": [], "fluorescence": []}
    truths = []
    p = params(case, seed, frames, variant)
    for k in range(n_pos):
        pk = p.model_copy(update={"seed": seed * 100 + k})
        base = out / f"{case}-{variant}-{seed * 100 + k}-{frames}"
        truths.append(_render(pk.for_mode("scatter"), base / "scatter"))
        _render(pk.for_mode("fluorescence"), base / "fluorescence")
        recordings["scatter"].append(base / "scatter" / "video.tif")
        recordings["fluorescence"].append(base / "fluorescence" / "video.tif")
        # the unstained sample in fluorescence: what leaks through the filter
        unstained = pk.model_copy(
            update={
                "populations": [pk.populations[0].model_copy(update={"labelled_fraction": 0.0})],
                "seed": 2000 + pk.seed,
            }
        )
        _render(unstained.for_mode("fluorescence"), base / "unstained")
        recordings.setdefault("unstained", []).append(base / "unstained" / "video.tif")
        if case == "free":  # label in buffer, recorded like the sample
            control = pk.model_copy(update={"populations": [FREE_LABEL], "seed": 1000 + pk.seed})
            _render(control.for_mode("fluorescence"), base / "label-only")
            recordings.setdefault("label_only", []).append(base / "label-only" / "video.tif")
    results = _count({}, truths, p, case, variant, seed, frames, n_pos, stated, out, recordings)
    done = results.pop()
    if keep_analysis:
        for rec in done.values():
            for v in rec.videos:
                _ = v.sha256  # resolve the checksum's future before pickling
        with kept.open("wb") as fh:
            pickle.dump((p, truths, done), fh)
    if not keep_videos:  # truths stay; the videos (about 0.2 GB each) go
        for video in (v for paths in recordings.values() for v in paths):
            video.unlink(missing_ok=True)
            (video.parent / "truth.json").rename(video.parent / "truth-only.json")
    return results


def _count(
    done: dict[str, Any],
    truths: list[dict[str, Any]],
    p: SimulationParams,
    case: str,
    variant: str,
    seed: int,
    frames: int,
    n_pos: int,
    stated: Sequence[str],
    out: Path,
    recordings: dict[str, list[Path]] | None = None,
) -> list[Any]:
    """Analyse ``recordings`` (unless ``done`` holds them analysed) and count for each statement.

    Returns the figures of each statement, then the analysed recordings.
    """
    conditions = Conditions(temperature_c=p.temperature_c, refractive_index=1.39)
    settings = AnalysisSettings()
    results: list[Any] = []
    for statement in stated:
        model = DepthModel(
            sheet_fwhm_um=p.sheet_fwhm_um * STATED[statement][0],
            depth_of_field_um=p.defocus_um * STATED[statement][1],
        )
        name = f"{case} {variant} seed {seed}"
        measured = statement == "measured"
        if not done:  # the videos are analysed once; only the counting depends on the optics
            assert recordings is not None
            measurement, done = labelled_fraction(
                recordings, conditions, settings, model=model, sample=name,
                measure_profile=measured,
            )  # fmt: skip
        else:
            measurement = fraction_from_recordings(
                done, conditions, settings, model, {}, sample=name, measure_profile=measured
            )
        results.append(_figures(measurement, truths, case, variant, statement, seed, n_pos))
        if case == "free":
            results[-1]["free_label_extra"] = _free_label_share(
                out, f"{case}-{variant}", seed, frames, n_pos
            )
    return [*results, done]


def _figures(
    measurement: Any,
    truths: list[dict[str, Any]],
    case: str,
    variant: str,
    stated: str,
    seed: int,
    n_pos: int,
) -> dict[str, Any]:
    """One run's figures against the truth."""
    lab = measurement.labelled
    assert lab is not None
    edges = np.array([c.low_nm for c in lab.classes] + [lab.classes[-1].high_nm])
    per_class, overall = truth_by_class(truths, edges)
    return {
        "case": case,
        "variant": variant,
        "stated_optics": stated,
        "seed": seed,
        "positions": n_pos,
        "truth": overall,
        "estimate": lab.fraction,
        "ci": [lab.ci.low, lab.ci.high],
        "covered": lab.ci.low <= overall <= lab.ci.high,
        "within": abs(lab.fraction - overall) <= max(0.2 * overall, 0.01),
        "range_nm": [lab.low_nm, lab.high_nm],
        "total_per_ml": lab.total_per_ml,
        "labelled_per_ml": lab.labelled_per_ml,
        "truth_per_ml": _truth_per_ml(truths, lab.low_nm, lab.high_nm),
        "profile_corners": measurement.diagnostics.get("fraction_at_profile_corners"),
        "depth_model": measurement.settings.get("depth_model"),
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
        "truth_labelled_d50_nm": _labelled_d50(truths),
        "bleach_half_life_s": measurement.diagnostics["bleach_half_life_s"],
        "fresh_supply_per_s": measurement.diagnostics["fresh_supply_per_s"],
        "warnings": measurement.warnings,
    }


HALF_LIVES_S = (1.0, 2.0, 5.0, 10.0, None)
"""True half-lives of the bleaching benchmark (None: no bleaching)."""


def half_life(seed: int, out: Path) -> list[dict[str, Any]]:
    """Measured against true bleaching half-life on one fluorescence capture per half-life.

    EVs (lognormal, median 110 nm), all dye-labelled, at 2·10⁹/mL; 320 × 240 px, 600 frames at
    30 fps; the video is removed once analysed.
    """
    from exocheck.nta.fluorescence import estimate_bleach_rate, significant_bleach_rate

    rows = []
    for true_s in HALF_LIVES_S:
        p = make_params(
            populations=[_ev(1.0, 2e9)],
            frames=600,
            width_px=320,
            height_px=240,
            seed=seed,
            photons_per_nm2=200.0,
            bleach_half_life_s=true_s,
            fluorescence={"background_photons": 3.0},
        )
        folder = out / f"half-life-{true_s}-{seed}"
        simulate(p.for_mode("fluorescence"), folder)
        _, videos, _ = analyze(
            [folder / "video.tif"], Conditions(), AnalysisSettings(mode="fluorescence")
        )
        (folder / "video.tif").unlink()
        rate, se = estimate_bleach_rate(videos)
        used = significant_bleach_rate(rate, se)
        rows.append(
            {
                "true_half_life_s": true_s,
                "rate_per_s": rate,
                "se_per_s": se,
                "measured_half_life_s": math.log(2.0) / used if used else None,
                "ratio": (math.log(2.0) / used / true_s) if used and true_s else None,
            }
        )
    return rows


def _truth_per_ml(truths: list[dict[str, Any]], low_nm: float, high_nm: float) -> dict[str, float]:
    """Scattering particles and labelled ones in the range, per mL of the boxes."""
    total = labelled = volume = 0.0
    for truth in truths:
        box = truth["box_particles"]
        scatters = np.array([pop["scatters"] for pop in truth["populations"]])
        keep = scatters[np.asarray(box["population"])]
        d = np.asarray(box["diameter_nm"])
        inside = keep & (d >= low_nm) & (d < high_nm)
        total += float(inside.sum())
        labelled += float((inside & np.asarray(box["labelled"], bool)).sum())
        volume += truth["box_volume_ml"]
    return {"total": total / volume, "labelled": labelled / volume}


def _labelled_d50(truths: list[dict[str, Any]]) -> float:
    """Median size of the labelled vesicles in the boxes."""
    sizes = []
    for truth in truths:
        box = truth["box_particles"]
        lab = np.asarray(box["labelled"], bool)
        ev = np.asarray(box["population"]) == 0
        sizes.append(np.asarray(box["diameter_nm"])[lab & ev])
    return float(np.median(np.concatenate(sizes)))


def _free_label_share(out: Path, case: str, seed: int, frames: int, positions: int) -> float:
    """Free label's fluorescent particles per labelled vesicle (visible at some time)."""
    free = ev = 0
    for k in range(positions):
        folder = out / f"{case}-{seed * 100 + k}-{frames}" / "fluorescence"
        kept = folder / "truth.json"
        kept = kept if kept.is_file() else folder / "truth-only.json"  # videos dropped
        truth = json.loads(kept.read_text())
        free += sum(p["population"] == "free label" for p in truth["particles"])
        ev += sum(p["population"] == "EV" for p in truth["particles"])
    return free / max(ev, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["f2", "f10", "f40", "size", "free", "bleach", "half-life"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--positions", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output" / "labelled")
    parser.add_argument("--variant", choices=sorted(MATRIX), default="base")
    parser.add_argument(
        "--stated", choices=sorted(STATED), nargs="+", default=["measured"],
        help="optics stated to the analysis (several: one analysis, counted for each)",
    )  # fmt: skip
    parser.add_argument(
        "--drop-videos", action="store_true", help="remove the videos once analysed"
    )
    parser.add_argument(
        "--keep-analysis", action="store_true",
        help="keep the analysed recordings (a pickle under --out) and count from them when kept",
    )  # fmt: skip
    args = parser.parse_args()
    if args.case == "half-life":
        print(json.dumps(half_life(args.seed, args.out), indent=1))
        return
    figures = run(
        args.case, args.seed, args.frames, args.out, args.positions, args.variant, args.stated,
        keep_videos=not args.drop_videos, keep_analysis=args.keep_analysis,
    )  # fmt: skip
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
