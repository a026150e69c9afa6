"""The axial detection profile measured on the tracks: Brownian motion along z calibrates z.

A particle diffuses along z as it does in the image plane, with the diffusion coefficient its
track gives. As it moves, the peak of its spot follows the optics' axial profile ``p(z)``: where
the profile is steep, the peak changes fast. Over one frame, the log peak changes by
``(d ln p / dz) · Δz`` plus noise, with ``E[Δz²] = 2 D Δt``; over two frames by twice the
variance. The difference between the mean squared changes at lags 2 and 1 is free of the noise
(independent between frames) and equals ``g(p) · 2 D Δt``, with ``g = (d ln p / dz)²`` at the
level ``p`` the particle is at. Levels are read as a frame's peak over its track's brightest
frame (long tracks, which cross focus). Fitting the profile's two lengths (the sheet's FWHM and
the defocus length of :class:`~exocheck.nta.fluorescence.DepthModel`) to ``g`` over the levels
gives the profile in µm, from the data alone: the profile of the peak that is thresholded (after
the detector's smoothing, which widens the effective defocus length), on the instrument used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from exocheck.nta.analyze import VideoAnalysis
    from exocheck.nta.fluorescence import DepthModel

MIN_TRACK_FRAMES = 30
"""Tracks at least this long are used: they have crossed focus, so their brightest frame is the
in-focus peak, and they give many pairs."""

LEVEL_EDGES = np.log(np.array([0.05, 0.08, 0.13, 0.2, 0.3, 0.45, 0.65]))
"""Bins of ln(peak / brightest frame). Near focus (levels over 0.65) a frame's change is no
longer linear in its step along z (the profile's top is flat, its curvature adds to the change),
and the brightest frame's own noise lowers the levels there: those are left out."""

MIN_OVER_THRESHOLD = 2.0
"""Frames with a peak under this many times the detection threshold are left out: those seen
so close to it are those whose noise lifted them over it, which biases their changes."""

MIN_PAIRS = 200
"""Fewest frame pairs (at each lag) for a level to enter the fit."""

SHEET_GRID_UM = np.geomspace(2.0, 40.0, 41)
DEFOCUS_GRID_UM = np.geomspace(0.7, 20.0, 41)


@dataclass(frozen=True)
class ProfileFit:
    """The fitted axial profile and what it rests on.

    ``sheet_fwhm_um`` and ``depth_of_field_um`` are the fitted lengths; ``resampled`` the same
    for bootstrap resamples of the tracks ([n, 2]); ``levels`` the peak levels used and
    ``slope`` the measured ``(d ln p / dz)²`` at each, 1/µm².
    """

    sheet_fwhm_um: float
    depth_of_field_um: float
    resampled: np.ndarray
    levels: np.ndarray
    slope: np.ndarray
    n_tracks: int
    sheet_order: int = 1


def _slope_model(
    levels: np.ndarray, sheet_um: np.ndarray, defocus_um: np.ndarray, sheet_order: int = 1
) -> np.ndarray:
    """``(d ln p / dz)²`` at profile levels ``levels`` for each (sheet, defocus) pair ([m, k]),
    for a sheet of the given order (:class:`~exocheck.nta.fluorescence.DepthModel`)."""
    z = np.linspace(0.0, 1.0, 2001)  # in units of 3 sheet widths, per model
    n = 2 * sheet_order
    out = np.empty((sheet_um.size, levels.size))
    for i, (f, zr) in enumerate(zip(sheet_um, defocus_um, strict=True)):
        zz = z * 3.0 * f
        log_p = -math.log(2.0) * (2.0 * zz / f) ** n - np.log1p((zz / zr) ** 2)
        d_log_p = -math.log(2.0) * n * (2.0 / f) ** n * zz ** (n - 1) - 2.0 * zz / (zr**2 + zz**2)
        at = np.interp(-np.log(levels), -log_p, zz)
        out[i] = np.interp(at, zz, d_log_p) ** 2
    return out


def _pairs(videos: Sequence[VideoAnalysis]) -> tuple[np.ndarray, ...]:
    """Per frame pair at lags 1 and 2 of the long tracks: track, lag, Δ ln peak, level, D."""
    track, lag, change, level, diff, dt = [], [], [], [], [], []
    offset = 0
    for v in videos:
        stats = v.track_stats
        if stats.empty or "d_um2_s" not in stats:
            continue
        d_of = dict(zip(stats["particle"].to_numpy(), stats["d_um2_s"].to_numpy(), strict=True))
        t = v.tracks[v.tracks["particle"].isin(list(d_of))]
        t = t[t["signal"] > MIN_OVER_THRESHOLD * v.threshold].sort_values(["particle", "frame"])
        sizes = t.groupby("particle")["frame"].transform("size").to_numpy()
        t = t[sizes >= MIN_TRACK_FRAMES]
        if t.empty:
            continue
        pid = t["particle"].to_numpy()
        frame = t["frame"].to_numpy()
        log_b = np.log(t["signal"].to_numpy(float))
        top = t.groupby("particle")["signal"].transform("max").to_numpy(float)
        log_top = np.log(top)
        _, ids = np.unique(pid, return_inverse=True)
        for k in (1, 2):
            same = (pid[k:] == pid[:-k]) & (frame[k:] - frame[:-k] == k)
            a, b = np.nonzero(same)[0], np.nonzero(same)[0] + k
            track.append(ids[a] + offset)
            lag.append(np.full(a.size, k))
            change.append(log_b[b] - log_b[a])
            level.append(0.5 * (log_b[a] + log_b[b]) - log_top[a])
            diff.append(np.array([d_of[p] for p in pid[a]], float))
            dt.append(np.full(a.size, 1.0 / v.fps))
        offset += int(ids.max()) + 1
    if not track:
        return tuple(np.zeros(0) for _ in range(6))
    return tuple(np.concatenate(x) for x in (track, lag, change, level, diff, dt))


def _measure(
    lag: np.ndarray, change: np.ndarray, level: np.ndarray, d_um2_s: np.ndarray, dt_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levels, measured ``g`` and pair counts per level bin (bins with too few pairs dropped)."""
    bins = np.digitize(level, LEVEL_EDGES) - 1
    n_bins = LEVEL_EDGES.size - 1
    levels, slopes, counts = [], [], []
    for b in range(n_bins):
        one = (bins == b) & (lag == 1)
        two = (bins == b) & (lag == 2)
        if one.sum() < MIN_PAIRS or two.sum() < MIN_PAIRS:
            continue
        spread = float(np.mean(change[two] ** 2) - np.mean(change[one] ** 2))
        step = float(np.mean(2.0 * np.clip(d_um2_s[one], 0.0, None) * dt_s[one]))
        if not step > 0:
            continue
        levels.append(math.exp(0.5 * (LEVEL_EDGES[b] + LEVEL_EDGES[b + 1])))
        slopes.append(max(spread / step, 0.0))
        counts.append(float(one.sum()))
    return np.array(levels), np.array(slopes), np.array(counts)


@functools.cache
def _grid(sheet_order: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The grid's (sheet, defocus) pairs, the level bins' centres and ``g`` of each pair there."""
    sheet, defocus = np.meshgrid(SHEET_GRID_UM, DEFOCUS_GRID_UM, indexing="ij")
    centres = np.exp(0.5 * (LEVEL_EDGES[:-1] + LEVEL_EDGES[1:]))
    return (
        sheet.ravel(),
        defocus.ravel(),
        centres,
        _slope_model(centres, sheet.ravel(), defocus.ravel(), sheet_order),
    )


def _best(
    levels: np.ndarray, slopes: np.ndarray, counts: np.ndarray, sheet_order: int = 1
) -> tuple[float, float]:
    """The (sheet, defocus) pair of the grid whose ``g`` is closest (weighted by pairs)."""
    sheet, defocus, centres, table = _grid(sheet_order)
    columns = np.searchsorted(centres, levels - 1e-12)
    cost = np.sum(counts * (table[:, columns] - slopes) ** 2, axis=1)
    i = int(np.argmin(cost))
    return float(sheet[i]), float(defocus[i])


def fit_profile(
    videos: Sequence[VideoAnalysis], n_bootstrap: int = 40, seed: int = 0, sheet_order: int = 1
) -> ProfileFit | None:
    """Fit the axial profile's two lengths to the tracks' peak changes (see the module).

    ``videos`` need sized tracks (``track_stats`` with ``d_um2_s``); channels of one instrument
    may be pooled (a fluorescence channel's bleaching adds a drift of the log peak per frame far
    smaller than its diffusive changes). Returns None where fewer than four levels have enough
    pairs. The bootstrap resamples tracks. ``sheet_order`` is the sheet's shape assumed
    (:class:`~exocheck.nta.fluorescence.DepthModel`: 1 Gaussian); the shape itself cannot be
    fitted on the slopes, and the labelled fraction's interval covers a flat top instead
    (:func:`exocheck.nta.labelled.sheet_shape_models`).

    Parameters
    ----------
    videos : sequence of VideoAnalysis
        Analysed captures with sized tracks.
    n_bootstrap : int
        Resamples of the tracks for the lengths' ranges.
    seed : int
        Seed of the resampling.
    sheet_order : int
        Order of the super-Gaussian sheet fitted.

    Returns
    -------
    ProfileFit or None
        The fitted lengths and what they rest on; None without four levels of enough pairs.
    """
    track, lag, change, level, d_um2_s, dt_s = _pairs(videos)
    levels, slopes, counts = _measure(lag, change, level, d_um2_s, dt_s)
    if levels.size < 4:
        return None
    sheet, defocus = _best(levels, slopes, counts, sheet_order)
    rng = np.random.default_rng(seed)
    n_tracks = int(track.max()) + 1
    resampled = []
    for _ in range(n_bootstrap):
        weight = np.bincount(rng.integers(0, n_tracks, n_tracks), minlength=n_tracks)
        take = np.repeat(np.arange(track.size), weight[track.astype(int)])
        lv, sl, ct = _measure(lag[take], change[take], level[take], d_um2_s[take], dt_s[take])
        if lv.size >= 4:
            resampled.append(_best(lv, sl, ct, sheet_order))
    return ProfileFit(
        sheet_fwhm_um=sheet,
        depth_of_field_um=defocus,
        resampled=np.array(resampled).reshape(-1, 2),
        levels=levels,
        slope=slopes,
        n_tracks=n_tracks,
        sheet_order=sheet_order,
    )


def fitted_models(fit: ProfileFit, stated: DepthModel) -> tuple[DepthModel, list[DepthModel]]:
    """The depth model of the fit, and the corners of its bootstrap's 95 % ranges."""
    from dataclasses import replace

    best = replace(
        stated,
        sheet_fwhm_um=fit.sheet_fwhm_um,
        depth_of_field_um=fit.depth_of_field_um,
        sheet_order=fit.sheet_order,
    )
    if fit.resampled.shape[0] < 10:
        return best, []
    lo, hi = np.percentile(fit.resampled, [2.5, 97.5], axis=0)
    corners = [
        replace(
            stated, sheet_fwhm_um=float(a), depth_of_field_um=float(b), sheet_order=fit.sheet_order
        )
        for a in (lo[0], hi[0])
        for b in (lo[1], hi[1])
    ]
    return best, corners
