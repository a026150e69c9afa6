"""Per-track diffusion statistics, corrected for localisation noise and motion blur.

For a particle with diffusion coefficient D, imaged every Δt with exposure τ and localisation error
σ (per axis), the displacements Δx between consecutive frames satisfy (Vestergaard, Blainey &
Flyvbjerg, Phys. Rev. E 89, 022726, 2014; motion blur for a uniformly lit exposure, R = τ / 6Δt)::

    <Δx²>        = 2 D Δt (1 − 2R) + 2 σ²
    <Δx_k Δx_k+1> = 2 D Δt R − σ²

The covariance-based estimator (CVE) solves these for each track::

    D  = <Δx²> / 2Δt + <Δx_k Δx_k+1> / Δt
    σ² = R <Δx²> + (2R − 1) <Δx_k Δx_k+1>

Both are unbiased but noisy for short tracks. The size distribution (:mod:`exocheck.nta.sizing`) uses
the likelihood of each track's mean squared displacement instead, with σ² from a population model
(:func:`localisation_noise_model`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from exocheck.errors import AnalysisError, ParameterError

TRACK_COLUMNS = (
    "particle",
    "n_frames",
    "n_steps",
    "msd1_um2",
    "cov1_um2",
    "d_um2_s",
    "sigma_loc_um",
    "sigma2_model_um2",
    "mass",
    "signal",
    "first_frame",
)


MAX_EP_PX = 1.0
"""Largest predicted localisation error (px) of a usable feature. On the standard bead capture
99.9 % of detected features have ep below 0.76 px (median 0.06 px); far larger values (up to
10⁷ px) only come from degenerate centroid windows."""


def blur_coefficient(exposure_s: float, frame_s: float) -> float:
    """Motion-blur coefficient R = τ / (6 Δt) for a uniformly lit exposure τ ≤ Δt."""
    if not 0 <= exposure_s <= frame_s * (1 + 1e-9):
        raise ParameterError(
            f"exposure ({exposure_s * 1e3:.3g} ms) must be between 0 and the frame interval "
            f"({frame_s * 1e3:.3g} ms)"
        )
    return exposure_s / (6.0 * frame_s)


def track_statistics(
    tracks: pd.DataFrame,
    fps: float,
    pixel_size_um: float,
    exposure_s: float,
    min_track_frames: int = 10,
) -> pd.DataFrame:
    """Per-track displacement statistics and CVE estimates (µm, s).

    Only steps between consecutive frames are used; a gap (from gap closing) splits the step
    sequence but keeps the particle's identity. Tracks with fewer than ``min_track_frames``
    positions are dropped. Features whose predicted error ``ep`` exceeds :data:`MAX_EP_PX` (or is
    not finite) are treated as missing frames.
    """
    if min_track_frames < 3:
        raise ParameterError("min_track_frames must be >= 3")
    frame_s = 1.0 / fps
    r_blur = blur_coefficient(exposure_s, frame_s)
    t = tracks
    if "ep" in t:
        # a centroid whose predicted error is above a pixel (or not finite) came from a window
        # whose weights summed to about zero: it is not a localisation, and its error prediction
        # (up to 1e7 px) would swamp the track's mean ep² and its brightness class's excess
        ep = t["ep"].to_numpy(dtype=float)
        t = t[np.isfinite(ep) & (ep <= MAX_EP_PX)]
    t = t.sort_values(["particle", "frame"], kind="stable")
    pid = t["particle"].to_numpy()
    frame = t["frame"].to_numpy()
    x = t["x"].to_numpy() * pixel_size_um
    y = t["y"].to_numpy() * pixel_size_um
    step_ok = (pid[1:] == pid[:-1]) & (np.diff(frame) == 1)
    dx = np.diff(x)
    dy = np.diff(y)
    sq = np.where(step_ok, dx * dx + dy * dy, 0.0)
    pair_ok = step_ok[1:] & step_ok[:-1]
    cov = np.where(pair_ok, dx[1:] * dx[:-1] + dy[1:] * dy[:-1], 0.0)
    step_pid = pid[1:]
    pair_pid = pid[2:]
    ids, n_frames = np.unique(pid, return_counts=True)
    idx_step = np.searchsorted(ids, step_pid)
    idx_pair = np.searchsorted(ids, pair_pid)
    n_steps = np.bincount(idx_step, weights=step_ok, minlength=ids.size)
    sum_sq = np.bincount(idx_step, weights=sq, minlength=ids.size)
    n_pairs = np.bincount(idx_pair, weights=pair_ok, minlength=ids.size)
    sum_cov = np.bincount(idx_pair, weights=cov, minlength=ids.size)
    grouped = t.groupby("particle", sort=True)
    stats = pd.DataFrame(
        {
            "particle": ids,
            "n_frames": n_frames,
            "n_steps": n_steps.astype(np.int64),
            "n_pairs": n_pairs.astype(np.int64),
            "mass": grouped["mass"].mean().to_numpy() if "mass" in t else np.nan,
            "signal": grouped["signal"].max().to_numpy() if "signal" in t else np.nan,
            "first_frame": grouped["frame"].min().to_numpy(),
        }
    )
    keep = (
        (stats["n_frames"] >= min_track_frames) & (stats["n_steps"] >= 2) & (stats["n_pairs"] >= 1)
    )
    stats = stats[keep.to_numpy()].reset_index(drop=True)
    sel = keep.to_numpy()
    if stats.empty:
        raise AnalysisError(
            f"no track is {min_track_frames} frames or longer: too few particles, or the video is "
            "too short or too noisy"
        )
    msd1 = sum_sq[sel] / (2.0 * n_steps[sel])  # per axis
    cov1 = sum_cov[sel] / (2.0 * n_pairs[sel])
    stats["msd1_um2"] = msd1
    stats["cov1_um2"] = cov1
    stats["d_um2_s"] = msd1 / (2 * frame_s) + cov1 / frame_s
    sigma2 = r_blur * msd1 + (2 * r_blur - 1) * cov1
    stats["sigma_loc_um"] = np.sqrt(np.clip(sigma2, 0, None))
    stats["sigma2_cve_um2"] = sigma2
    if "ep" in t:
        ep2_px2 = np.square(t["ep"].to_numpy(dtype=float))
        idx_feature = np.searchsorted(ids, pid)
        ep_um2 = (
            np.bincount(idx_feature, weights=ep2_px2, minlength=ids.size)[sel] / n_frames[sel]
        ) * pixel_size_um**2
    else:
        ep_um2 = np.zeros(len(stats))
    stats["ep2_um2"] = ep_um2
    stats["sigma2_model_um2"] = localisation_noise_model(
        ep_um2, sigma2, stats["n_steps"].to_numpy(), stats["mass"].to_numpy()
    )
    return stats.drop(columns=["n_pairs"])


def localisation_noise_model(
    ep2_um2: np.ndarray,
    sigma2_cve_um2: np.ndarray,
    n_steps: np.ndarray,
    mass: np.ndarray | None = None,
    steps_per_class: int = 4000,
) -> np.ndarray:
    """σ² per track: predicted pixel-noise error plus an excess measured from similar tracks.

    ``ep2_um2`` is each track's mean squared localisation error predicted from the image noise and
    its brightness (``ep`` of :func:`exocheck.nta.locate.find_features`). What that prediction
    misses (blur-streak shape, defocus, sub-pixel bias) grows as particles get dimmer, so it is
    measured per brightness class: tracks are sorted by mean ``mass`` and split into classes of
    about ``steps_per_class`` steps; each class's excess is the step-weighted mean of CVE σ² minus
    the prediction (clipped at zero), interpolated in log(mass). One track's CVE σ² is far too noisy
    to use alone; pooled over a class its error is about E[m]/√(steps in the class).
    """
    n = ep2_um2.size
    if n == 0:
        return np.zeros(0)
    w = np.asarray(n_steps, float)
    resid = np.asarray(sigma2_cve_um2, float) - ep2_um2
    classes = int(np.clip(w.sum() // steps_per_class, 1, 12))
    if mass is None or classes == 1 or not np.all(np.isfinite(mass)) or n < 4 * classes:
        excess = max(float(np.sum(w * resid) / np.sum(w)), 0.0)
        return ep2_um2 + excess
    log_mass = np.log(np.clip(mass, 1e-9, None))
    order = np.argsort(log_mass)
    cum = np.cumsum(w[order])
    edges = np.searchsorted(cum, np.linspace(0, cum[-1], classes + 1)[1:-1])
    groups = np.split(order, edges)
    centre = np.array([np.average(log_mass[g], weights=w[g]) for g in groups])
    level = np.array([max(float(np.average(resid[g], weights=w[g])), 0.0) for g in groups])
    return ep2_um2 + np.interp(log_mass, centre, level)


def msd_sums_by_track(
    tracks: pd.DataFrame, pixel_size_um: float, max_lag: int = 7, min_frames: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Per track, the sum of squared displacements (both axes, µm²) and their number, per lag.

    Returns two ``[tracks, max_lag]`` arrays over the tracks of at least ``min_frames`` positions.
    Only displacements between frames exactly ``lag`` apart within one track count.
    """
    t = tracks.sort_values(["particle", "frame"], kind="stable")
    t = t[t.groupby("particle")["frame"].transform("size") >= min_frames]
    pid = t["particle"].to_numpy()
    frame = t["frame"].to_numpy()
    x = t["x"].to_numpy() * pixel_size_um
    y = t["y"].to_numpy() * pixel_size_um
    ids, index = np.unique(pid, return_inverse=True)
    sums = np.zeros((ids.size, max_lag))
    counts = np.zeros((ids.size, max_lag))
    for lag in range(1, max_lag + 1):
        if pid.size <= lag:
            break
        ok = (pid[lag:] == pid[:-lag]) & (frame[lag:] - frame[:-lag] == lag)
        sq = (x[lag:] - x[:-lag]) ** 2 + (y[lag:] - y[:-lag]) ** 2
        owner = index[lag:]
        sums[:, lag - 1] = np.bincount(owner, weights=np.where(ok, sq, 0.0), minlength=ids.size)
        counts[:, lag - 1] = np.bincount(owner, weights=ok, minlength=ids.size)
    return sums, counts


def ensemble_msd_um2(
    tracks: pd.DataFrame, pixel_size_um: float, max_lag: int = 7, min_frames: int = 20
) -> np.ndarray:
    """Mean squared displacement per axis at lags 1…``max_lag`` over all long tracks, µm².

    Only displacements between frames exactly ``lag`` apart within one track count. NaN where no
    displacement of that lag exists.
    """
    return ensemble_from_sums(*msd_sums_by_track(tracks, pixel_size_um, max_lag, min_frames))


def ensemble_from_sums(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Ensemble MSD per axis (µm², NaN where no displacement) from :func:`msd_sums_by_track`."""
    total = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 0.5 * sums.sum(axis=0) / total, np.nan)


def increment_spread(
    sums: np.ndarray, counts: np.ndarray, n_resamples: int = 200, seed: int = 0
) -> np.ndarray:
    """Bootstrap SD (over tracks) of each ensemble-MSD increment relative to the reference slope.

    ``sums`` and ``counts`` are from :func:`msd_sums_by_track`. The reference slope is that of
    :func:`choose_lag` (mean increment from lag 3 to 7); the result has one value per increment
    (lag 1→2, …, 6→7), NaN when there are too few tracks to resample.
    """
    n = sums.shape[0]
    if n < 5 or sums.shape[1] < 7:
        return np.full(max(sums.shape[1] - 1, 0), np.nan)
    rng = np.random.default_rng(seed)
    draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_resamples)])
    with np.errstate(invalid="ignore", divide="ignore"):
        msd = 0.5 * (draws @ sums) / (draws @ counts)
        inc = np.diff(msd, axis=1)
        ratio = inc[:, :6] / inc[:, 2:6].mean(axis=1, keepdims=True) - 1.0
    return np.nanstd(ratio, axis=0)


def choose_lag(
    msd_um2: np.ndarray, tolerance: float = 0.05, spread: np.ndarray | None = None
) -> tuple[int, float]:
    """The shortest lag from which the ensemble MSD grows linearly, and its slope per frame.

    For Brownian motion with localisation noise and motion blur, MSD(n) = 2D(nΔt − τ/3) + 2σ² grows
    by the same 2DΔt from every lag to the next. Compressed or temporally filtered recordings (e.g.
    H.264 with inter-frame prediction) suppress the shortest displacements; then the first
    increments fall short of the later ones. The reference slope is the mean increment from lag 3
    to lag 7; the lag returned is the first from which no increment falls short of it by more
    than ``tolerance`` (1 for well-behaved videos), or by more than three times its sampling
    spread (``spread``, from :func:`increment_spread`) when that is wider: with few tracks the
    increments scatter by more than 5 %. Increments *above* the reference are no sign of
    filtering: a polydisperse sample's ensemble MSD bends down with lag, because the tracks long
    enough for the longer lags are mostly the slow, large particles.
    """
    inc = np.diff(msd_um2)
    if inc.size < 6 or not np.all(np.isfinite(inc[:6])) or np.mean(inc[2:6]) <= 0:
        return 1, float("nan")
    ref = float(np.mean(inc[2:6]))
    allowed = np.full(6, tolerance)
    if spread is not None and np.size(spread) >= 6:
        allowed = np.fmax(allowed, 3.0 * np.nan_to_num(np.asarray(spread[:6], float)))
    for start in range(0, 3):
        if np.all(inc[start:6] / ref - 1.0 >= -allowed[start:6]):
            return start + 1, ref
    return 3, ref


def lag_statistics(
    tracks: pd.DataFrame, particles: np.ndarray, lag: int, pixel_size_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per particle: mean squared ``lag``-frame displacement per axis (µm²) and its count."""
    t = tracks.sort_values(["particle", "frame"], kind="stable")
    pid = t["particle"].to_numpy()
    frame = t["frame"].to_numpy()
    x = t["x"].to_numpy() * pixel_size_um
    y = t["y"].to_numpy() * pixel_size_um
    ok = (pid[lag:] == pid[:-lag]) & (frame[lag:] - frame[:-lag] == lag)
    sq = ((x[lag:] - x[:-lag]) ** 2 + (y[lag:] - y[:-lag]) ** 2)[ok]
    owner = pid[lag:][ok]
    sums = pd.Series(sq).groupby(owner).sum().reindex(particles).fillna(0.0).to_numpy()
    counts = pd.Series(sq).groupby(owner).size().reindex(particles).fillna(0).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        msd = np.where(counts > 0, sums / (2.0 * np.maximum(counts, 1)), np.nan)
    return msd, counts.astype(float)
