"""Time of the size-distribution solver alone, for 1,000 to 20,000 tracks.

Tracks are drawn from the solver's own model (as in ``tests/nta/test_sizing.py``): an EV-like
lognormal population (median 110 nm, GSD 1.35), tracks of 10–150 steps at 25 fps, 15 ms exposure,
localisation variance 0.002 µm² (±50 % from track to track). Each size is solved three times with
the default settings (cross-validated λ, 40 bootstrap resamples); the median wall time is
reported with the number of track classes, the chosen λ and the D50 error. BLAS runs on one
thread, as in the ``exocheck`` program.

Usage::

    python benchmarks/sizing.py
"""

from __future__ import annotations

import os
import time

# as the exocheck program does (exocheck.cli): BLAS on one thread unless the environment says
# otherwise; a thread pool only slows the small matrix products of the solver
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

from exocheck.nta.sizing import SizingSettings, size_distribution  # noqa: E402
from exocheck.physics import diffusion_um2_s  # noqa: E402

FRAME_S, EXPOSURE_S, TEMPERATURE_C = 1 / 25, 0.015, 25.0


def tracks(n: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    """Per-track statistics of ``n`` tracks and their true diameters."""
    rng = np.random.default_rng(seed)
    diameter_nm = 110.0 * np.exp(np.log(1.35) * rng.standard_normal(n))
    n_steps = rng.integers(10, 150, n).astype(float)
    sigma2_um2 = 0.002 * np.exp(0.5 * rng.standard_normal(n))
    d = diffusion_um2_s(diameter_nm, TEMPERATURE_C)
    expected = 2 * d * (FRAME_S - EXPOSURE_S / 3) + 2 * sigma2_um2
    rho = (d * EXPOSURE_S / 3 - sigma2_um2) / expected
    shape = n_steps / (1 + 2 * rho**2)
    return rng.gamma(shape, expected / shape), n_steps, sigma2_um2, diameter_nm


def run(sizes: tuple[int, ...] = (1000, 5000, 10000, 20000)) -> list[dict[str, float]]:
    """Median solve time (s) and solution facts for each number of tracks."""
    rows = []
    size_distribution(*tracks(200)[:3], FRAME_S, EXPOSURE_S, TEMPERATURE_C)  # imports, BLAS
    for n in sizes:
        m, n_steps, sigma2, truth = tracks(n)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = size_distribution(
                m, n_steps, sigma2, FRAME_S, EXPOSURE_S, TEMPERATURE_C, settings=SizingSettings()
            )
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "tracks": n,
                "seconds": float(np.median(times)),
                "classes": result.n_classes,
                "grid": int(result.diameter_nm.size),
                "smoothing_per_track": result.smoothing,
                "d50_error_pct": 100 * (result.stats["d50_nm"] / np.median(truth) - 1),
                "peaks": len(result.peaks),
            }
        )
    return rows


def main() -> None:
    for row in run():
        print(
            f"{row['tracks']:6d} tracks: {row['seconds']:.3f} s ({row['classes']} classes, "
            f"{row['grid']} grid points, λ {row['smoothing_per_track']:.0e} per track, "
            f"D50 {row['d50_error_pct']:+.2f} %, {row['peaks']} peak)"
        )


if __name__ == "__main__":
    main()
