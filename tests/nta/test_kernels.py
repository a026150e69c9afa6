"""The compiled detection and linking kernels against independent references.

Smoothing is compared with ``scipy.ndimage.gaussian_filter`` (the same Gaussian, reflecting borders);
centroids with spots drawn at known sub-pixel positions; linking with a plain-Python implementation
of the same greedy rule; the drift smoother with ``scipy.ndimage.uniform_filter1d``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from exocheck.nta import _kernels
from exocheck.nta.drift import _moving_average
from exocheck.nta.link import link
from exocheck.nta.locate import (
    LEVEL_STEP_PX,
    LocateSettings,
    find_features,
    locate_video,
    noise_sigma,
    preprocess,
    static_background,
)


def _reference_smooth(frames: np.ndarray, background: np.ndarray, sign: float, sigma: float):
    img = sign * frames.astype(np.float64) - background
    level = np.median(img[:, ::LEVEL_STEP_PX, ::LEVEL_STEP_PX].reshape(len(img), -1), axis=1)
    img -= level[:, None, None]
    return ndi.gaussian_filter(img, (0, sigma, sigma), truncate=3.0, mode="reflect")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int16])
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("sigma", [1.0, 1.6])
def test_smoothing_matches_scipy(dtype, invert: bool, sigma: float) -> None:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 200, size=(3, 37, 53)).astype(dtype)
    frames[1] += 7  # a frame-wide level change, which the per-frame level removes
    background = rng.normal(50, 5, size=(37, 53)).astype(np.float32)
    settings = LocateSettings(smoothing_sigma_px=sigma, invert=invert)
    got = preprocess(frames, background, settings)
    want = _reference_smooth(frames, background, -1.0 if invert else 1.0, sigma)
    # float32 arithmetic on values of a few hundred: 1e-4 relative
    np.testing.assert_allclose(got, want, atol=2e-3 * max(1.0, np.abs(want).max() / 100))


def test_preprocess_reuses_a_buffer_only_when_it_fits() -> None:
    frames = np.zeros((4, 20, 30), np.uint8)
    background = np.zeros((20, 30), np.float32)
    buffer = np.full((8, 20, 30), 99.0, np.float32)
    out = preprocess(frames, background, LocateSettings(), buffer)
    assert out.shape == (4, 20, 30) and np.shares_memory(out, buffer)
    assert not out.any()
    other = preprocess(frames, background, LocateSettings(), np.empty((8, 21, 30), np.float32))
    assert other.shape == (4, 20, 30)


def _gaussian_spot(shape, y0: float, x0: float, amplitude: float, width_px: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return amplitude * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * width_px**2))


def _located_spots(amplitude: float, n: int = 200, seed: int = 7):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-0.5, 0.5, size=(n, 2)) + 20.0
    frames = np.zeros((n, 40, 40), np.float32)
    for i, (y0, x0) in enumerate(truth):
        frames[i] = _gaussian_spot((40, 40), y0, x0, amplitude, 1.3) + rng.normal(0, 1.0, (40, 40))
    frames += 10.0
    background = np.full((40, 40), 10.0, np.float32)
    settings = LocateSettings()
    smoothed = preprocess(frames, background, settings)
    found = find_features(smoothed, 5 * noise_sigma(smoothed), settings, 0, 1.0)
    assert len(found) == n and (found["frame"].to_numpy() == np.arange(n)).all()
    return found, truth


def test_centroids_of_bright_spots_have_no_pixel_locking() -> None:
    found, truth = _located_spots(60.0)
    dx = found["x"].to_numpy() - truth[:, 1]
    dy = found["y"].to_numpy() - truth[:, 0]
    # At SNR 60 the noise part is ~0.007 px, so what remains is the estimator's systematic error
    # against the sub-pixel offset. A plain centroid on a truncated window shows ~0.07 px here.
    assert np.mean(np.hypot(dx, dy)) < 0.03
    assert max(abs(dx.mean()), abs(dy.mean())) < 0.005


def test_predicted_localisation_error_matches_the_scatter() -> None:
    found, truth = _located_spots(10.0)
    dx = found["x"].to_numpy() - truth[:, 1]
    dy = found["y"].to_numpy() - truth[:, 0]
    scatter = np.sqrt((dx.var() + dy.var()) / 2)
    predicted = np.sqrt(np.mean(found["ep"] ** 2))
    # ep is the pixel-noise prediction; the systematic part (<0.02 px) adds ~2 % at this SNR.
    # 2 × 200 errors fix the SD to ±7 % (2σ). Ignoring that the mask follows the estimate (the
    # Jacobian J) would predict half the scatter.
    assert 0.9 < scatter / predicted < 1.15, (scatter, predicted)


def test_a_flat_topped_spot_is_one_feature_and_borders_are_skipped() -> None:
    smoothed = np.zeros((2, 30, 30), np.float32)
    smoothed[0, 10:13, 10:14] = 50.0  # plateau
    smoothed[1, 1, 15] = 50.0  # closer to the border than the window radius
    smoothed[1, 15, 15] = 40.0
    settings = LocateSettings()
    found = find_features(smoothed, 5.0, settings)
    assert list(found["frame"]) == [0, 1]
    assert abs(found["x"].iloc[0] - 11.5) < 0.6 and abs(found["y"].iloc[0] - 11.0) < 0.6
    assert (found["x"].iloc[1], found["y"].iloc[1]) == (15.0, 15.0)


def test_noise_only_video_gives_practically_no_features() -> None:
    rng = np.random.default_rng(11)
    frames = rng.poisson(30, size=(64, 120, 160)).astype(np.uint16)
    background = static_background(frames)
    result = locate_video([(0, frames[:32]), (32, frames[32:])], background, LocateSettings(), 64)
    # 5σ on a smoothed image: about one false maximum per ten 640×480 frames; these are 1/16 of that
    assert len(result.features) <= 2
    # the measured noise is the smoothed noise: σ_raw·√(Σ taps²)² for a separable kernel
    taps = _kernels.gaussian_kernel(1.0).astype(float)
    expected = math.sqrt(30.0) * float(np.sum(taps**2))
    assert result.noise_sigma == pytest.approx(expected, rel=0.05)


def _reference_link(frame, x, y, radius: float, memory: int) -> np.ndarray:
    """Greedy linking in plain Python: pairs by distance, then older track, then feature order."""
    particle = np.full(len(frame), -1)
    active: list[list] = []  # [id, x, y, last frame]
    next_id = 0
    for t in np.unique(frame):
        idx = np.flatnonzero(frame == t)
        active = [a for a in active if t - a[3] <= memory + 1]
        pairs = []
        for ti, (_, ax, ay, af) in enumerate(active):
            reach = radius * math.sqrt(t - af)
            for fi, j in enumerate(idx):
                d = math.hypot(x[j] - ax, y[j] - ay)
                if d <= reach:
                    pairs.append((d, ti, fi))
        used, assigned = set(), {}
        for _, ti, fi in sorted(pairs):
            if ti not in used and fi not in assigned:
                used.add(ti)
                assigned[fi] = ti
        for fi, j in enumerate(idx):
            if fi in assigned:
                track = active[assigned[fi]]
                track[1:] = [x[j], y[j], t]
                particle[j] = track[0]
            else:
                particle[j] = next_id
                active.append([next_id, x[j], y[j], t])
                next_id += 1
    return particle


@pytest.mark.parametrize("memory", [0, 2])
def test_linking_matches_the_plain_python_rule(memory: int) -> None:
    rng = np.random.default_rng(memory)
    # dense, crossing random walkers that vanish and reappear: many competing candidates
    n_particles, n_frames = 40, 60
    start = rng.uniform(0, 60, size=(n_particles, 2))
    walk = start[:, None, :] + np.cumsum(rng.normal(0, 1.0, size=(n_particles, n_frames, 2)), 1)
    seen = rng.random((n_particles, n_frames)) > 0.1
    p, f = np.nonzero(seen)
    features = pd.DataFrame({"frame": f, "x": walk[p, f, 0], "y": walk[p, f, 1]})
    got = link(features, 3.0, memory)
    feats = features.sort_values(["frame", "y", "x"], kind="stable").reset_index(drop=True)
    want = _reference_link(
        feats["frame"].to_numpy(), feats["x"].to_numpy(), feats["y"].to_numpy(), 3.0, memory
    )
    np.testing.assert_array_equal(got["particle"].to_numpy(), want)
    assert got["particle"].nunique() < len(features) / 5  # it does link


@pytest.mark.parametrize(("n", "size"), [(100, 25), (10, 10), (7, 4), (2, 2)])
def test_drift_smoother_matches_scipy(n: int, size: int) -> None:
    values = np.random.default_rng(n).normal(size=(n, 2))
    want = ndi.uniform_filter1d(values, size=size, axis=0, mode="nearest")
    np.testing.assert_allclose(_moving_average(values, size), want, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("n_frames", [31, 40, 7])
def test_static_background_is_the_temporal_median(dtype, n_frames: int) -> None:
    rng = np.random.default_rng(n_frames)
    top = 255 if dtype == np.uint8 else 4000
    frames = rng.integers(0, top + 1, size=(n_frames, 9, 70)).astype(dtype)
    frames[:, 0, 0] = top  # the extremes of the range
    frames[:, 0, 1] = 0
    step = -(-n_frames // 31)  # every frame up to 31, then a spread of 31 (40 → 20, an even count)
    want = np.median(frames[::step], axis=0)
    np.testing.assert_array_equal(static_background(frames), want.astype(np.float32))
    np.testing.assert_array_equal(static_background(frames, invert=True), -want.astype(np.float32))


def test_warm_up_prepares_the_kernels_an_analysis_calls(tmp_path):
    """An analysis after :func:`_kernels.build_cache` (what installation runs) compiles nothing:
    the warm-up passes the same array types (layout, read-only) as detection and linking do."""
    import subprocess
    import sys

    from exocheck.simulate import make_params, make_population, simulate

    beads = make_population(name="b", diameter_nm=100.0, cv=0.03, concentration_per_ml=3e9)
    params = make_params(
        populations=[beads], frames=100, width_px=256, height_px=192, fps=30.0,
        exposure_ms=15.0, pixel_size_um=0.166, temperature_c=25.0, seed=5,
    )  # fmt: skip
    simulate(params, tmp_path)
    video = tmp_path / "video.tif"
    code = f"""
from exocheck.nta import _kernels as k
kernels = [k.smooth_frames, k.local_maxima, k.refine_centroids, k.temporal_median, k.link_frames]
k.build_cache()
before = [list(f.signatures) for f in kernels]
from exocheck.nta.analyze import Conditions, analyze
analyze([{str(video)!r}], Conditions())
new = [str(s) for f, b in zip(kernels, before) for s in f.signatures if s not in b]
print("NEW", new)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "NEW []" in done.stdout, done.stdout
