"""An independent check of the simulator and of the sizing chain: trackpy, a peer tool.

trackpy (used here only, never in exocheck's runtime) locates, links and fits each track's mean
squared displacement on simulated bead videos; Stokes–Einstein then gives a median diameter that
must lie near the simulated one. The chain is the usual lab one: ``tp.batch`` → ``tp.link`` →
``tp.filter_stubs`` → ``tp.imsd`` → least-squares MSD = 4Dτ + b over lags 1–4 per track.

Tolerance: ±20 % on the median diameter. The fit's intercept absorbs localisation noise (+4σ²) and
motion blur (−4Dt_E/3), so each track's D̂ is unbiased on average, and a median is unchanged by
the monotone map D → d, so only the median of D̂ itself matters. A per-track MSD is a sum of
squared displacements, distributed like a scaled χ² with few effective degrees of freedom k (the
lags share the same steps; k ≈ 5–10 for tracks of 20–40 frames), whose median lies below its
mean by about 2/(3k): D̂'s median is 5–15 % low and the median diameter as much high. Keeping
tracks of ≥ 20 frames holds that bias near the low end. The median of ~100 tracks has a sampling
error of about 1.25 × 0.4 / √100 ≈ 5 %. Over ten seeds this chain gave 1.05–1.17 × the true
median, so +20 % bounds bias plus sampling; −20 % is symmetric. The check still catches a
wrong viscosity, temperature, frame rate or pixel size (the size scales as its square) of the
simulator, or a factor of 2 in its diffusion convention.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import trackpy as tp

from exocheck.physics import diameter_nm_from_diffusion
from exocheck.simulate import Population, Simulation, SimulationParams

pytestmark = pytest.mark.slow  # the peer (trackpy) on simulated captures

FPS = 30.0
PIXEL_UM = 0.166
TEMPERATURE_C = 25.0


def _video(diameter_nm: float, seed: int) -> tuple[np.ndarray, float]:
    """Frames of a small bead video and the median diameter of the visible beads."""
    params = SimulationParams(
        populations=[Population(diameter_nm=diameter_nm, cv=0.03, concentration_per_ml=1.2e9)],
        frames=200,
        width_px=320,
        height_px=240,
        fps=FPS,
        exposure_ms=15.0,
        pixel_size_um=PIXEL_UM,
        temperature_c=TEMPERATURE_C,
        seed=seed,
    )
    sim = Simulation(params)
    frames = np.concatenate(list(sim.chunks()))
    truth = sim.truth()
    visible = np.median([p["diameter_nm"] for p in truth["particles"]])
    return frames, float(visible)


def _trackpy_median_nm(frames: np.ndarray) -> tuple[float, int]:
    tp.quiet()
    # diameter 9 px: PSF σ ≈ 1.5 px plus motion blur; minmass 100: above the noise maxima
    # (masses 20–75 at this diameter), below the dimmest tracked beads
    features = tp.batch(list(frames), 9, minmass=100, processes=1)
    # search range 12 px: a 100 nm bead's one-frame step exceeds it with probability ~1e-3
    tracks = tp.filter_stubs(tp.link(features, 12, memory=3), 20)
    msd = tp.imsd(tracks, PIXEL_UM, FPS, max_lagtime=4).iloc[:4]
    tau = msd.index.to_numpy(dtype=float)
    d_um2_s = []
    for pid in msd.columns:
        y = msd[pid].to_numpy()
        ok = np.isfinite(y)
        if ok.sum() >= 2:
            d_um2_s.append(np.polyfit(tau[ok], y[ok], 1)[0] / 4.0)
    d = np.array(d_um2_s)
    d = d[d > 0]
    sizes = np.asarray(diameter_nm_from_diffusion(d, TEMPERATURE_C))
    return float(np.median(sizes)), int(sizes.size)


@pytest.mark.parametrize(("diameter_nm", "seed"), [(100.0, 11), (200.0, 12)])
def test_trackpy_median_diameter_matches_simulated_beads(diameter_nm: float, seed: int) -> None:
    frames, true_median = _video(diameter_nm, seed)
    assert math.isclose(true_median, diameter_nm, rel_tol=0.02)  # CV 3 %: visible beads ≈ nominal
    median, n_tracks = _trackpy_median_nm(frames)
    assert n_tracks >= 40, f"only {n_tracks} tracks: the check would be noise"
    assert 0.8 * true_median <= median <= 1.2 * true_median, (
        f"trackpy median {median:.0f} nm for {true_median:.0f} nm beads ({n_tracks} tracks)"
    )
