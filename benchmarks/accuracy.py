"""Accuracy of ``exocheck analyze`` on simulated scenarios: the table in ``docs/method.md``.

Usage::

    python benchmarks/accuracy.py SCENARIO [--seed N] [--frames N] [--out DIR]

Scenarios: ``ps100``, ``ps150``, ``ps200`` (polystyrene beads, CV 3 %), ``drift37`` (100 nm beads
at 37 °C with 4 µm/s drift), ``bimodal`` (100 + 200 nm), ``ev`` (lognormal, median 110 nm, GSD
1.35, refractive index 1.39, 2·10⁹/mL, 200 photons/nm²: about 175 particles per frame),
``ev-standard`` (the same at 10⁹/mL) and ``ev-sparse`` (5·10⁸/mL). Videos are simulated once into ``--out``
(default ``bench-output/accuracy``) and reused. The truth is the set of particles that were ever
visible in the video (``truth.json``), as in ``tests/nta/test_accuracy.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from exocheck.nta.analyze import AnalysisSettings, Conditions, analyze
from exocheck.nta.sizing import SizingSettings
from exocheck.simulate import Population, make_params, simulate

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


SCENARIOS = {
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
    "ev": (_ev(2e9), {"photons_per_nm2": 200.0}),
    "ev-standard": (_ev(1e9), {"photons_per_nm2": 200.0}),
    "ev-sparse": (_ev(5e8), {"photons_per_nm2": 200.0}),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output" / "accuracy")
    args = parser.parse_args()
    populations, extra = SCENARIOS[args.scenario]
    params = make_params(populations=populations, frames=args.frames, seed=args.seed, **extra)
    folder = args.out / f"{args.scenario}-{args.seed}-{args.frames}"
    if not (folder / "truth.json").is_file():
        simulate(params, folder)
    truth = json.loads((folder / "truth.json").read_text())
    measurement, _, _ = analyze(
        [folder / "video.tif"],
        Conditions(
            temperature_c=params.temperature_c, refractive_index=populations[0].refractive_index
        ),
        AnalysisSettings(sizing=SizingSettings()),
    )
    visible = np.percentile([p["diameter_nm"] for p in truth["particles"]], [10, 50, 90])
    size = measurement.size
    got = np.array([size.d10_nm, size.d50_nm, size.d90_nm])
    errors = " / ".join(f"{e:+.1f}" for e in 100 * (got / visible - 1))
    mean_error = 100 * (size.mean_nm / np.mean([p["diameter_nm"] for p in truth["particles"]]) - 1)
    peaks = ", ".join(f"{p.diameter_nm:.0f} nm ({p.fraction:.0%})" for p in size.peaks)
    print(
        f"{args.scenario} seed {args.seed}, {args.frames} frames, {measurement.tracks.count} tracks: "
        f"D10/D50/D90 {got[0]:.1f} / {got[1]:.1f} / {got[2]:.1f} nm, visible truth "
        f"{visible[0]:.1f} / {visible[1]:.1f} / {visible[2]:.1f} nm, error {errors} %, "
        f"mean {mean_error:+.1f} %; peaks {peaks}; "
        f"detection limit {measurement.diagnostics.get('detection_limit_nm', float('nan')):.0f} nm"
    )


if __name__ == "__main__":
    main()
