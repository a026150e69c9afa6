"""The penalised maximum-likelihood size distribution on track statistics drawn from its own model.

Tracks are synthesised directly as their sufficient statistic: the mean squared single-frame
displacement m of a track of n steps is gamma-distributed with mean 2D(Δt − τ/3) + 2σ² and shape
n/(1 + 2ρ²) (see ``exocheck.nta.sizing``). This isolates the solver from detection and linking.
"""

from __future__ import annotations

import numpy as np
import pytest

from exocheck.nta import sizing
from exocheck.nta.sizing import SizingSettings, size_distribution
from exocheck.physics import diffusion_um2_s

FRAME_S, EXPOSURE_S, TEMPERATURE_C = 1 / 30, 0.015, 25.0


def _tracks(diameters_nm: np.ndarray, rng: np.random.Generator, sigma2_um2: float = 0.002):
    n_steps = rng.integers(8, 120, size=diameters_nm.size).astype(float)
    d = diffusion_um2_s(diameters_nm, TEMPERATURE_C)
    expected = 2 * d * (FRAME_S - EXPOSURE_S / 3) + 2 * sigma2_um2
    rho = (d * EXPOSURE_S / 3 - sigma2_um2) / expected
    shape = n_steps / (1 + 2 * rho**2)
    m = rng.gamma(shape, expected / shape)
    return m, n_steps, np.full(m.size, sigma2_um2)


def _solve(diameters_nm, seed: int, n_bootstrap: int = 0, **settings):
    rng = np.random.default_rng(seed)
    m, n, s2 = _tracks(diameters_nm, rng)
    return size_distribution(
        m, n, s2, FRAME_S, EXPOSURE_S, TEMPERATURE_C,
        settings=SizingSettings(n_bootstrap=n_bootstrap, **settings),
    )  # fmt: skip


def _quantiles(result) -> np.ndarray:
    return np.array([result.stats[k] for k in ("d10_nm", "d50_nm", "d90_nm")])


def _lognormal(seed: int, n: int = 1500, median_nm: float = 110.0, gsd: float = 1.35):
    rng = np.random.default_rng(100 + seed)
    return median_nm * np.exp(np.log(gsd) * rng.standard_normal(n))


def test_lognormal_population_is_recovered_with_one_peak() -> None:
    errors = []
    for seed in range(1, 7):
        diameters = _lognormal(seed)
        result = _solve(diameters, seed, n_bootstrap=40)
        truth = np.percentile(diameters, [10, 50, 90])
        errors.append(_quantiles(result) / truth - 1)
        assert result.weights.sum() == pytest.approx(1.0)
        # one smooth peak: no comb of spikes, whatever λ the cross-validation chose
        assert len(result.peaks) == 1, [(p.diameter_nm, p.support) for p in result.peaks]
        # the number-density mode of a lognormal is median·exp(−ln²GSD) = 100.5 nm
        assert result.peaks[0].diameter_nm == pytest.approx(100.5, rel=0.08)
        assert result.stats["mean_nm"] == pytest.approx(np.mean(diameters), rel=0.04)
    errors = np.array(errors)
    # With 1500 tracks of 8–120 steps the unpenalised EM had SDs of 2.7 / 1.7 / 2.8 % over 12
    # seeds; the penalised fit is no worse. Bounds: each seed within ~3.5 SD, the mean of six
    # within ~3.5 standard errors.
    assert np.all(np.abs(errors) < [0.10, 0.06, 0.10]), errors
    assert np.all(np.abs(errors.mean(axis=0)) < [0.04, 0.025, 0.04]), errors.mean(axis=0)


def test_narrow_beads_are_not_broadened() -> None:
    rng = np.random.default_rng(5)
    diameters = 100.0 * (1 + 0.03 * rng.standard_normal(800))
    result = _solve(diameters, 5)
    assert result.stats["d50_nm"] == pytest.approx(100.0, rel=0.02)
    # D10–D90 of a 3 % CV population spans ±3.8 %; the per-track estimates span ±25 % or more
    assert result.stats["d90_nm"] / result.stats["d10_nm"] < 1.12


@pytest.mark.parametrize("second_nm", [150.0, 200.0])
def test_one_to_one_mixtures_give_two_peaks_in_place(second_nm: float) -> None:
    rng = np.random.default_rng(int(second_nm))
    diameters = np.concatenate(
        [
            100.0 * (1 + 0.03 * rng.standard_normal(700)),
            second_nm * (1 + 0.03 * rng.standard_normal(700)),
        ]
    )
    result = _solve(diameters, int(second_nm), n_bootstrap=40)
    peaks = sorted(result.peaks, key=lambda p: p.diameter_nm)
    assert len(peaks) == 2, [(p.diameter_nm, p.support) for p in peaks]
    assert peaks[0].diameter_nm == pytest.approx(100.0, rel=0.08)
    assert peaks[1].diameter_nm == pytest.approx(second_nm, rel=0.08)
    for peak in peaks:
        assert peak.fraction == pytest.approx(0.5, abs=0.10)
        assert peak.support >= SizingSettings().min_peak_support


def test_track_classes_cost_nothing_in_accuracy() -> None:
    diameters = _lognormal(3, n=3000)
    exact = _solve(diameters, 3, class_width=0.0)
    grouped = _solve(diameters, 3)
    assert grouped.n_classes < exact.n_classes == diameters.size
    # classes move each row by < 1 % of ln m, far inside its width (≥ 9 % for 120 steps)
    np.testing.assert_allclose(_quantiles(grouped), _quantiles(exact), rtol=0.003)


def test_bootstrap_interval_covers_the_truth_and_agrees_with_full_refits() -> None:
    rng = np.random.default_rng(9)
    diameters = 150.0 * (1 + 0.03 * rng.standard_normal(400))
    result = _solve(diameters, 9, n_bootstrap=40)
    low, high = result.ci["d50_nm"]
    assert low < result.stats["d50_nm"] < high
    assert low < np.median(diameters) * 1.02 and high > np.median(diameters) * 0.98
    # the one-step (linear) bootstrap equals a full re-solve of a resample to well inside the
    # interval's width
    m, n, s2 = _tracks(diameters, np.random.default_rng(9))
    draw = np.random.default_rng(1).integers(0, m.size, m.size)
    full = size_distribution(
        m[draw], n[draw], s2[draw], FRAME_S, EXPOSURE_S, TEMPERATURE_C,
        settings=SizingSettings(n_bootstrap=0, smoothing=result.smoothing),
    )  # fmt: skip
    assert abs(full.stats["d50_nm"] - result.stats["d50_nm"]) < 2 * (high - low)


def test_density_band_contains_the_estimate_and_mostly_the_truth() -> None:
    diameters = _lognormal(2)
    result = _solve(diameters, 2)
    assert np.all(result.weights_ci_low <= result.weights + 1e-15)
    assert np.all(result.weights + 1e-15 >= result.weights_ci_low)
    assert np.all(result.weights_ci_high >= result.weights - 1e-15)
    edges = result.bin_edges_nm
    from scipy.stats import lognorm

    cdf = lognorm(s=np.log(1.35), scale=110.0).cdf
    truth = np.diff(cdf(edges))
    core = (result.diameter_nm > 80) & (result.diameter_nm < 160)  # D10–D90 of the population
    inside = (truth >= result.weights_ci_low) & (truth <= result.weights_ci_high)
    assert inside[core].mean() >= 0.8


def test_third_difference_penalty_leaves_lognormals_free() -> None:
    penalty = sizing._third_difference_penalty(40, 0.03)
    x = np.arange(40) * 0.03
    quadratic = 2.0 - 3.0 * x - 5.0 * x**2  # the log-density of a lognormal in ln d
    wiggle = np.cos(np.arange(40) * 1.5)
    assert wiggle @ penalty @ wiggle > 1e3
    assert abs(quadratic @ penalty @ quadratic) < 1e-9 * (wiggle @ penalty @ wiggle)


def test_grid_starts_at_the_detection_limit_without_piling_at_the_edge() -> None:
    # 10 % of the tracks move faster than any particle above the detection limit could
    rng = np.random.default_rng(4)
    diameters = np.concatenate([_lognormal(4, n=900), np.full(100, 40.0)])
    m, n, s2 = _tracks(diameters, rng)
    result = size_distribution(
        m, n, s2, FRAME_S, EXPOSURE_S, TEMPERATURE_C,
        settings=SizingSettings(n_bootstrap=0), min_diameter_nm=75.0,
    )  # fmt: skip
    assert result.diameter_nm[0] == pytest.approx(sizing.LIMIT_MARGIN * 75.0)
    density = result.weights / np.diff(result.bin_edges_nm)
    assert density[0] < 0.5 * density.max()
    assert result.stats["mode_nm"] > result.diameter_nm[3]
    assert result.weights[-1] < 1e-3  # the grid ends where the data end
    # the fast tracks are reported as below the range, not drawn as particles
    assert 0.03 < result.below_range_fraction < 0.2
    truth = np.percentile(diameters[:900], [10, 50, 90])
    assert np.all(np.abs(_quantiles(result) / truth - 1) < [0.10, 0.06, 0.10])


def test_summary_statistics_are_consistent_with_the_quantiles() -> None:
    result = _solve(_lognormal(5), 5)
    s = result.stats
    assert s["d10_nm"] < s["mode_nm"] < s["d50_nm"] < s["mean_nm"] < s["d90_nm"]
    # a lognormal's SD is about (D90 − D10)/2.56
    assert s["sd_nm"] == pytest.approx((s["d90_nm"] - s["d10_nm"]) / 2.5631, rel=0.15)


def test_too_few_tracks_is_one_clear_error() -> None:
    from exocheck.errors import AnalysisError

    with pytest.raises(AnalysisError, match="at least 5"):
        size_distribution(np.ones(3), np.ones(3), np.zeros(3), FRAME_S, EXPOSURE_S, 25.0)


def test_log_gamma_matches_scipy() -> None:
    from scipy.special import gammaln

    x = np.concatenate([np.geomspace(0.5, 1e5, 400), [1.0, 2.0, 6.999, 7.0, 7.001]])
    np.testing.assert_allclose(sizing.log_gamma(x), gammaln(x), rtol=1e-10, atol=1e-10)


def test_particles_with_many_tracks_give_no_false_peaks_when_held_out_whole() -> None:
    """60 particles, each seen as 10 tracks of 150 steps (a long capture of a sparse sample):
    cross-validation over single tracks predicts a held-out track by its own particle's other
    tracks and rewards spikes (before the peak test and the smoothest fit with the tested peaks,
    it chose a rougher λ in at least one of these 4 seeds); holding out each particle's tracks together
    does not. Both now give one peak, and the grouped choice is never the rougher."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        diameters = np.repeat(110 * np.exp(np.log(1.35) * rng.standard_normal(60)), 10)
        groups = np.repeat(np.arange(60), 10)
        m, _, s2 = _tracks(diameters, rng)
        n = np.full(m.size, 150.0)
        d = diffusion_um2_s(diameters, TEMPERATURE_C)
        expected = 2 * d * (FRAME_S - EXPOSURE_S / 3) + 2 * s2
        shape = n / (1 + 2 * ((d * EXPOSURE_S / 3 - s2) / expected) ** 2)
        m = rng.gamma(shape, expected / shape)
        whole, single = (
            size_distribution(m, n, s2, FRAME_S, EXPOSURE_S, TEMPERATURE_C, track_groups=g)
            for g in (groups, None)
        )
        assert len(whole.peaks) == 1, [p.diameter_nm for p in whole.peaks]
        assert len(single.peaks) == 1, [p.diameter_nm for p in single.peaks]
        assert whole.smoothing >= single.smoothing


def test_time_blocks_split_each_video_into_equal_spans_of_frames() -> None:
    """Cross-validation blocks by a track's first frame: five equal spans of each video, the
    same span of every replicate in one block, the last frame in the last block."""
    from types import SimpleNamespace

    import pandas as pd

    from exocheck.nta.analyze import time_blocks

    first = np.array([0, 19, 20, 59, 60, 99])
    videos = [
        SimpleNamespace(n_frames=100, track_stats=pd.DataFrame({"first_frame": first})),
        SimpleNamespace(n_frames=50, track_stats=pd.DataFrame({"first_frame": [0, 49]})),
    ]
    assert time_blocks(videos).tolist() == [0, 0, 1, 2, 3, 4, 0, 4]


def test_balanced_folds_keep_groups_whole_and_sizes_even() -> None:
    rng = np.random.default_rng(3)
    sizes = np.concatenate([rng.integers(1, 30, 40), np.ones(600, dtype=int)])
    groups = np.repeat(np.arange(sizes.size), sizes)
    folds = sizing.balanced_folds(groups, 5, seed=1)
    for g in np.unique(groups):  # a group is held out whole
        assert np.unique(folds[groups == g]).size == 1
    counts = np.bincount(folds, minlength=5)
    assert counts.max() - counts.min() <= 1, counts


def test_five_time_blocks_are_five_folds() -> None:
    groups = np.repeat(np.arange(5), [90, 110, 100, 95, 105])
    folds = sizing.balanced_folds(groups, 5, seed=2)
    assert sorted(np.unique(folds[groups == g]).item() for g in range(5)) == list(range(5))


@pytest.mark.parametrize("ratio", [1.5, 2.0])
def test_peak_count_test_resolves_mixtures_over_seeds(ratio: float) -> None:
    """1:1 mixtures of 100 nm and 150 or 200 nm beads (CV 3 %), 500 tracks each, three seeds:
    two peaks within 8 % of each size and number fractions within 10 points, every seed. The
    smoothing is scanned over its whole path, so a flat stretch of the cross-validated score can
    no longer stop the search at a one-lognormal fit (which drew 1:1.5 as one peak at ~120 nm)."""
    for seed in range(3):
        rng = np.random.default_rng(40 + seed)
        diameters = np.concatenate(
            [
                100.0 * (1 + 0.03 * rng.standard_normal(500)),
                100.0 * ratio * (1 + 0.03 * rng.standard_normal(500)),
            ]
        )
        result = _solve(diameters, 40 + seed)
        peaks = sorted(result.peaks, key=lambda p: p.diameter_nm)
        assert len(peaks) == 2, (seed, [p.diameter_nm for p in peaks])
        assert peaks[0].diameter_nm == pytest.approx(100.0, rel=0.08)
        assert peaks[1].diameter_nm == pytest.approx(100.0 * ratio, rel=0.08)
        assert peaks[0].fraction == pytest.approx(0.5, abs=0.10)


def test_peak_count_test_keeps_one_lognormal_one_peak_at_any_number_of_tracks() -> None:
    """A single lognormal (GSD 1.35) stays one peak from 300 to 6000 tracks, three seeds each:
    the extra peaks of rough fits must beat the one-peak fits in held-out likelihood by two
    standard errors, which a single population does only by chance."""
    for n in (300, 1500, 6000):
        for seed in range(3):
            result = _solve(_lognormal(seed, n=n), seed)
            assert len(result.peaks) == 1, (n, seed, [p.diameter_nm for p in result.peaks])


def test_a_truncated_lognormal_keeps_its_edge() -> None:
    """Detected particles stop at the detection limit: a lognormal cut at 85 nm (1,800 tracks,
    grid from 80 nm), three seeds. One population is drawn as the smoothest one-peak fit, a
    lognormal, which draws the cut as a lognormal's tail (D50 +2.4 to +3.7 %); the quantiles
    stay within ±4 % (about 2.5 seed-to-seed SDs of the untruncated case)."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        diameters = 110 * np.exp(np.log(1.35) * rng.standard_normal(4000))
        diameters = diameters[diameters > 85][:1800]
        m, n, s2 = _tracks(diameters, rng)
        result = size_distribution(
            m, n, s2, FRAME_S, EXPOSURE_S, TEMPERATURE_C,
            settings=SizingSettings(n_bootstrap=0), min_diameter_nm=80,
        )  # fmt: skip
        errors = _quantiles(result) / np.percentile(diameters, [10, 50, 90]) - 1
        assert np.all(np.abs(errors) < 0.04), (seed, errors)
        assert len(result.peaks) == 1


def test_bootstrap_interval_of_a_narrow_peak_is_as_wide_as_its_sampling_spread() -> None:
    """A narrow bead peak on a wide grid (short tracks widen it), strongly smoothed: the fit's
    curvature spans many orders of magnitude, and resamples solved in a badly scaled basis hardly
    moved (a D50 interval 15x too narrow). The interval must match the spread of full re-solves of
    independent samples of the same beads: within a factor 2.5 either way (the SD of 8 re-solves
    is known to ±25 %, a 40-resample percentile range to ±20 %)."""
    rng = np.random.default_rng(12)
    diameters = 100.0 * (1 + 0.03 * rng.standard_normal(737))
    s2 = np.full(diameters.size, 0.002)
    n = rng.integers(8, 150, diameters.size).astype(float)
    d = diffusion_um2_s(diameters, TEMPERATURE_C)
    expected = 2 * d * (FRAME_S - EXPOSURE_S / 3) + 2 * s2
    shape = n / (1 + 2 * ((d * EXPOSURE_S / 3 - s2) / expected) ** 2)
    m = rng.gamma(shape, expected / shape)
    result = size_distribution(m, n, s2, FRAME_S, EXPOSURE_S, TEMPERATURE_C)
    low, high = result.ci["d50_nm"]
    d50s = []
    for seed in range(8):  # independent tracks of the same beads, each solved in full
        m_b = np.random.default_rng(100 + seed).gamma(shape, expected / shape)
        d50s.append(
            size_distribution(
                m_b, n, s2, FRAME_S, EXPOSURE_S, TEMPERATURE_C,
                settings=SizingSettings(n_bootstrap=0, smoothing=result.smoothing),
            ).stats["d50_nm"]
        )  # fmt: skip
    spread = 3.92 * float(np.std(d50s, ddof=1))  # a 95 % range
    assert 0.4 * spread < high - low < 2.5 * spread, (low, high, spread)
