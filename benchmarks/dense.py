"""``make bench``, dense capture: exocheck against trackpy on an EV-like sample at ~175 particles
per frame, and the size-distribution solver alone on 1,000–20,000 tracks.

The capture: 1500 frames of 640×480 at 25 fps (60 s), exposure 15 ms, a lognormal EV-like
population (median 110 nm, GSD 1.35, refractive index 1.39) at 2·10⁹ per mL, 200 photons/nm²,
25 °C, seed 11 (simulated once into ``bench-output/videos/ev-dense-1500``). Each tool runs as its
own process (``run.measure``); exocheck three times (the median is reported), trackpy with
``tp.batch`` in two processes (its faster setting on the standard capture).

trackpy's settings for this video: diameter 9 and memory 3 as on the standard capture; minmass
90, at the dip between noise maxima (masses 30–70) and particles (from ≈ 85) in the mass
histogram of its first frames; search range 12 px, the standard capture's (a 110 nm EV moves
3.7 px per axis per frame at 25 fps; the smallest visible ones, ≈ 80 nm, exceed 12 px with
probability ≈ 2·10⁻³).

Usage (this section alone)::

    python benchmarks/dense.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

SCENARIO = {
    "populations": [
        {
            "distribution": "lognormal",
            "diameter_nm": 110.0,
            "gsd": 1.35,
            "refractive_index": 1.39,
            "concentration_per_ml": 2e9,
        }
    ],
    "frames": 1500,
    "fps": 25.0,
    "exposure_ms": 15.0,
    "photons_per_nm2": 200.0,
    "temperature_c": 25.0,
    "seed": 11,
}
TRACKPY_DENSE = [
    "--diameter", "9", "--minmass", "90", "--search-range", "12", "--memory", "3",
    "--min-frames", "10", "--fit-lags", "4", "--mpp", "0.166", "--fps", "25",
    "--temperature-c", "25",
]  # fmt: skip
TITLE = "## Dense EV capture and the size-distribution solver"


def dense_video(measure, exocheck: str, videos: Path) -> Path:
    """The dense capture, simulated once and kept while its settings do not change."""
    import yaml

    folder = videos / "ev-dense-1500"
    stamp = folder / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == SCENARIO:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    scenario = folder / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    measure(
        "simulate dense capture",
        [exocheck, "simulate", "--scenario", str(scenario), "--out", str(folder)],
        videos.parent / "logs" / "simulate-dense.log",
    )
    stamp.write_text(json.dumps(SCENARIO))
    return folder


def run(measure, exocheck: str, python: str, trackpy: str, out: Path) -> dict:
    """Time both tools on the dense capture and the solver alone; returns the results."""
    import sizing as sizing_bench  # sibling module

    folder = dense_video(measure, exocheck, out / "videos")
    video = folder / "video.tif"
    logs = out / "logs"
    ex_out = out / "exocheck-dense"
    cmd = [exocheck, "analyze", str(video), "--refractive-index", "1.39", "--out", str(ex_out)]
    warm = [
        measure(f"exocheck analyze dense, run {i + 1}", cmd, logs / "ex-dense.log")
        for i in range(3)
    ]
    exocheck_run = sorted(warm, key=lambda r: r.wall_s)[1]
    result = json.loads((ex_out / "result.json").read_text())
    summary = out / "trackpy-dense.json"
    tp_run = measure(
        "trackpy pipeline dense, tp.batch processes=2",
        [python, trackpy, str(video), "--out", str(summary), *TRACKPY_DENSE, "--processes", "2"],
        logs / "tp-dense.log",
    )
    truth = json.loads((folder / "truth.json").read_text())
    visible = np.array([p["diameter_nm"] for p in truth["particles"]])
    return {
        "exocheck": asdict(exocheck_run),
        "trackpy": asdict(tp_run),
        "ratio": tp_run.wall_s / exocheck_run.wall_s,
        "exocheck_sizes": {
            "d10_nm": result["size"]["d10_nm"],
            "d50_nm": result["size"]["d50_nm"],
            "d90_nm": result["size"]["d90_nm"],
            "tracks": result["tracks"]["count"],
            "peaks": len(result["size"]["peaks"]),
            "particles_per_frame": result["particles_per_frame"],
        },
        "trackpy_sizes": json.loads(summary.read_text()),
        "truth": dict(
            zip(
                ("d10_nm", "d50_nm", "d90_nm"),
                np.percentile(visible, [10, 50, 90]).tolist(),
                strict=True,
            )
        ),
        "sizing": sizing_bench.run(),
    }


def section(results: dict) -> list[str]:
    """The benchmark page's section for the dense capture and the solver."""
    ex, tp = results["exocheck"], results["trackpy"]
    s, t, truth = results["exocheck_sizes"], results["trackpy_sizes"], results["truth"]
    lines = [
        TITLE,
        "",
        "Simulated (`benchmarks/dense.py`): 1500 frames of 640×480 at 25 fps, exposure 15 ms, an "
        "EV-like lognormal population (median 110 nm, GSD 1.35, n = 1.39) at 2·10⁹/mL, "
        f"{s['particles_per_frame']:.0f} particles per frame. Whole processes, as above; exocheck "
        "is the median of three warm runs, trackpy runs `tp.batch` in two processes.",
        "",
        "| run | wall (s) | CPU (s) | peak RSS (MB) | tracks | D10 / D50 / D90 (nm) |",
        "|---|---:|---:|---:|---:|---|",
        f"| truth (visible particles) | | | | | {truth['d10_nm']:.0f} / {truth['d50_nm']:.0f} / "
        f"{truth['d90_nm']:.0f} |",
        f"| `exocheck analyze --refractive-index 1.39` | {ex['wall_s']:.1f} | "
        f"{ex['user_s'] + ex['sys_s']:.1f} | {ex['peak_rss_mb']:.0f} | {s['tracks']} | "
        f"{s['d10_nm']:.0f} / {s['d50_nm']:.0f} / {s['d90_nm']:.0f} |",
        f"| trackpy pipeline, 2 processes | {tp['wall_s']:.1f} | {tp['user_s'] + tp['sys_s']:.1f} "
        f"| {tp['peak_rss_mb']:.0f} | {t.get('tracks_sized', '')} | {t['d10_nm']:.0f} / "
        f"{t['d50_nm']:.0f} / {t['d90_nm']:.0f} |",
        "",
        f"**Speed ratio on the dense capture: {results['ratio']:.1f}×** (target ≥ 15×). exocheck "
        f"reports {s['peaks']} peak.",
        "",
        "The solver alone (`python benchmarks/sizing.py`: tracks drawn from the likelihood model, "
        "EV-like lognormal, 10–150 steps; default settings: cross-validated smoothing and 40 "
        "bootstrap resamples; median of three):",
        "",
        "| tracks | seconds | classes | grid points | λ per track | D50 error | peaks |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["sizing"]:
        lines.append(
            f"| {row['tracks']} | {row['seconds']:.3f} | {row['classes']} | {row['grid']} | "
            f"{row['smoothing_per_track']:.0e} | {row['d50_error_pct']:+.2f} % | {row['peaks']} |"
        )
    lines.append("")
    return lines


def main() -> None:
    import run as bench  # sibling module: the whole-process timer and paths

    results = run(bench.measure, bench.EXOCHECK, bench.PYTHON, bench.TRACKPY, bench.OUT)
    (bench.OUT / "dense.json").write_text(json.dumps(results, indent=1))
    from bench_report import splice_section

    splice_section(ROOT / "docs" / "benchmarks.md", TITLE, section(results))
    print(f"[bench] dense capture: {results['ratio']:.1f}×", flush=True)


if __name__ == "__main__":
    main()
