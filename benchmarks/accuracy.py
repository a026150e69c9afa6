"""Accuracy of ``exocheck analyze`` on simulated scenarios: the tables in ``docs/method.md``.

Usage::

    python benchmarks/accuracy.py SCENARIO [--seed N] [--frames N] [--out DIR] [--no-index]
    python benchmarks/accuracy.py --matrix [--seeds 1 2 3] [--frames N] [--cells A B ...]

Scenarios: ``ps100``, ``ps150``, ``ps200`` (polystyrene beads, CV 3 %), ``drift37`` (100 nm beads
at 37 °C with 4 µm/s drift), ``bimodal`` (100 + 200 nm, 2:1), ``mix15`` (100 + 150 nm, 1:1),
``mix2`` (100 + 200 nm, 1:1), ``ev`` (lognormal, median 110 nm, GSD 1.35, refractive index 1.39,
2·10⁹/mL, 200 photons/nm²: about 175 particles per frame), ``ev-standard`` (the same at 10⁹/mL),
``ev-sparse`` (5·10⁸/mL) and ``ev-dilute`` (2·10⁸/mL). ``--matrix`` runs the robustness matrix
(:data:`MATRIX`: physics variants of the samples, each cell over several seeds) and prints one row
per capture and a verdict per cell against the acceptance bounds. Videos are simulated once into ``--out`` (default
``bench-output/accuracy``) and reused. The truth is the set of particles that were ever visible in
the video (``truth.json``), as in ``tests/nta/test_accuracy.py``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from exocheck.nta.analyze import AnalysisSettings, Conditions, analyze  # noqa: E402
from exocheck.nta.sizing import SizingSettings  # noqa: E402
from exocheck.simulate import Population, make_params, simulate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _beads(diameter_nm: float, per_ml: float) -> list[Population]:
    return [Population(diameter_nm=diameter_nm, cv=0.03, concentration_per_ml=per_ml)]


def _ev(per_ml: float) -> list[Population]:
    return [
        Population(
            distribution="lognormal", diameter_nm=110, gsd=1.35, refractive_index=1.39,
            concentration_per_ml=per_ml,
        )
    ]  # fmt: skip


def _mix(small_nm: float, large_nm: float, per_ml: float) -> list[Population]:
    return [
        Population(name="small", diameter_nm=small_nm, cv=0.03, concentration_per_ml=per_ml),
        Population(name="large", diameter_nm=large_nm, cv=0.03, concentration_per_ml=per_ml),
    ]


SCENARIOS: dict[str, tuple[list[Population], dict[str, Any]]] = {
    "ps100": (_beads(100, 3e8), {}),
    "ps150": (_beads(150, 3e8), {}),
    "ps200": (_beads(200, 1.5e8), {}),
    "drift37": (_beads(100, 3e8), {"temperature_c": 37.0, "drift_um_s": (4.0, 0.0)}),
    "bimodal": (
        [
            Population(name="100", diameter_nm=100, cv=0.03, concentration_per_ml=2e8),
            Population(name="200", diameter_nm=200, cv=0.03, concentration_per_ml=1e8),
        ],
        {},
    ),
    "mix15": (_mix(100, 150, 1.5e8), {}),
    "mix2": (_mix(100, 200, 1.5e8), {}),
    "ev": (_ev(2e9), {"photons_per_nm2": 200.0}),
    "ev-standard": (_ev(1e9), {"photons_per_nm2": 200.0}),
    "ev-sparse": (_ev(5e8), {"photons_per_nm2": 200.0}),
    "ev-dilute": (_ev(2e8), {"photons_per_nm2": 200.0}),
    # 1 µm polystyrene beads on a wide-field microscope: 2 fps, 0.175 µm/px, out-of-focus rings,
    # JPEG frames, 40-60 beads per frame (the look of a real fluorescence-microscope recording)
    "bead1um": (
        _beads(1000, 4e8),
        {
            "fps": 2.0, "exposure_ms": 50.0, "pixel_size_um": 0.175, "photons_per_nm2": 0.0015,
            "ring_um_per_um": 0.4, "jpeg_quality": 75, "frames": 240,
        },
    ),
}  # fmt: skip

VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "thin": {"sheet_fwhm_um": 4.0},
    "thick": {"sheet_fwhm_um": 10.0},
    "flat": {"sheet_profile": "flat-top"},
    "sampled": {"blur_substeps": 2},
    "noblur": {"exposure_ms": 0.1},
    "emccd": {"camera": "emccd"},
    "ring": {"ring_um_per_um": 0.4},
    "jpeg": {"jpeg_quality": 75},
    "fps10": {"fps": 10.0},
    "fps100": {"fps": 100.0, "exposure_ms": 5.0, "frames": 1800},
}
"""Physics variants of the simulator, applied on top of a scenario's settings."""

MATRIX: list[tuple[str, str]] = [
    ("ps100", "base"),
    ("ps100", "emccd"),
    ("ps100", "jpeg"),
    ("ps100", "sampled"),
    ("ps100", "fps10"),
    ("ps100", "fps100"),
    ("drift37", "base"),
    ("ev-dilute", "base"),
    ("ev-sparse", "base"),
    ("ev-sparse", "thin"),
    ("ev-sparse", "thick"),
    ("ev-sparse", "flat"),
    ("ev-sparse", "noblur"),
    ("ev-sparse", "ring"),
    ("ev-standard", "base"),
    ("ev", "base"),
    ("mix15", "base"),
    ("mix2", "base"),
    ("bead1um", "base"),
]
"""(scenario, variant) cells of the robustness matrix."""


def run_case(
    scenario: str,
    variant: str = "base",
    seed: int = 1,
    frames: int = 600,
    out: Path = ROOT / "bench-output" / "accuracy",
    index: bool = True,
    analyse: bool = True,
) -> dict[str, Any]:
    """Simulate (once) and analyse one capture; errors against the visible truth."""
    populations, extra = SCENARIOS[scenario]
    settings = {"frames": frames, **extra, **VARIANTS[variant]}
    frames = settings["frames"]
    params = make_params(populations=populations, seed=seed, **settings)
    tag = "" if variant == "base" else f"-{variant}"
    folder = out / f"{scenario}{tag}-{seed}-{frames}"
    if not (folder / "truth.json").is_file():
        simulate(params, folder)
    if not analyse:
        return {}
    truth = json.loads((folder / "truth.json").read_text())
    measurement, _, _ = analyze(
        [folder / "video.tif"],
        Conditions(
            temperature_c=params.temperature_c,
            refractive_index=populations[0].refractive_index if index else None,
        ),
        AnalysisSettings(sizing=SizingSettings()),
    )
    true_d = np.array([p["diameter_nm"] for p in truth["particles"]])
    visible = np.percentile(true_d, [10, 50, 90])
    size = measurement.size
    got = np.array([size.d10_nm, size.d50_nm, size.d90_nm])
    row: dict[str, Any] = {
        "scenario": scenario,
        "variant": variant,
        "seed": seed,
        "frames": frames,
        "tracks": measurement.tracks.count,
        "got_nm": got.tolist(),
        "truth_nm": visible.tolist(),
        "error_pct": (100 * (got / visible - 1)).tolist(),
        "mean_error_pct": 100 * (size.mean_nm / float(np.mean(true_d)) - 1),
        "peaks_nm": [p.diameter_nm for p in size.peaks],
        "peak_fractions": [p.fraction for p in size.peaks],
        "smoothing": measurement.diagnostics.get("size_smoothing_per_track"),
    }
    pops = np.array([p["population"] for p in truth["particles"]])
    names = sorted(set(pops), key=lambda name: float(np.median(true_d[pops == name])))
    if len(names) == 2:  # a mixture: the verdict is on its two peaks
        row["true_small_fraction"] = float(np.mean(pops == names[0]))
        row["true_sizes_nm"] = [float(np.median(true_d[pops == name])) for name in names]
    return row


def verdict(row: dict[str, Any]) -> str:
    """'ok' or the reasons a capture misses the acceptance bounds of its sample."""
    e = row["error_pct"]
    misses = []
    if row["scenario"] == "bead1um":  # one population, no mode below 800 nm
        if len(row["peaks_nm"]) != 1 or min(row["peaks_nm"]) < 800:
            misses.append("peaks")
    elif row["scenario"].startswith("ps") or row["scenario"] == "drift37":
        if abs(e[1]) > 3 or abs(e[0]) > 10 or abs(e[2]) > 10:
            misses.append("D-quantiles")
        if len(row["peaks_nm"]) != 1:
            misses.append("peaks")
    elif row["scenario"].startswith("ev"):
        if abs(e[0]) > 6 or abs(e[1]) > 6 or abs(e[2]) > 12 or abs(row["mean_error_pct"]) > 8:
            misses.append("D-quantiles/mean")
        if len(row["peaks_nm"]) != 1:
            misses.append("peaks")
    elif "true_sizes_nm" in row:
        peaks = row["peaks_nm"]
        if len(peaks) != 2:
            misses.append("peaks")
        else:
            for got, want in zip(peaks, row["true_sizes_nm"], strict=True):
                if abs(got / want - 1) > 0.08:
                    misses.append("peak position")
            if abs(row["peak_fractions"][0] - row["true_small_fraction"]) > 0.10:
                misses.append("fraction")
    return "ok" if not misses else "MISS " + ", ".join(misses)


def describe(row: dict[str, Any]) -> str:
    """One line per capture."""
    errors = " / ".join(f"{x:+.1f}" for x in row["error_pct"])
    peaks = ", ".join(
        f"{d:.0f} nm ({f:.0%})" for d, f in zip(row["peaks_nm"], row["peak_fractions"], strict=True)
    )
    extra = ""
    if "true_small_fraction" in row:
        extra = f", true small share {row['true_small_fraction']:.0%}"
    return (
        f"{row['scenario']:<11} {row['variant']:<7} seed {row['seed']} {row['frames']} fr "
        f"{row['tracks']:5d} tracks: D10/D50/D90 error {errors} %, mean {row['mean_error_pct']:+.1f} %;"
        f" peaks {peaks}{extra} -> {verdict(row)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS))
    parser.add_argument("--variant", default="base", choices=sorted(VARIANTS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output" / "accuracy")
    parser.add_argument("--no-index", action="store_true", help="analyse without refractive index")
    parser.add_argument("--matrix", action="store_true")
    parser.add_argument("--cells", nargs="+", help="matrix cells as SCENARIO:VARIANT")
    parser.add_argument("--json", type=Path, help="append each row to this JSON-lines file")
    parser.add_argument("--simulate-only", action="store_true", help="only make the captures")
    args = parser.parse_args()
    if args.matrix:
        cells = [tuple(c.split(":")) for c in args.cells] if args.cells else MATRIX
        cases = [(s, v, seed) for s, v in cells for seed in args.seeds]
    else:
        if args.scenario is None:
            parser.error("a SCENARIO or --matrix is needed")
        cases = [(args.scenario, args.variant, args.seed)]
    for scenario, variant, seed in cases:
        row = run_case(
            scenario,
            variant,
            seed,
            args.frames,
            args.out,
            not args.no_index,
            not args.simulate_only,
        )
        if not row:
            continue
        print(describe(row), flush=True)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
