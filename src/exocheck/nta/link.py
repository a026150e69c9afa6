"""Linking features into tracks: nearest neighbours within a physical search radius.

The search radius is the displacement that the smallest particle of interest exceeds between two
frames with probability below 1e-3 (Brownian steps in 2-D have a Rayleigh-distributed length), plus
an allowance for drift. Candidate links are resolved globally per frame by increasing distance, so
the result does not depend on the order of features. A particle may vanish for up to ``memory``
frames (gap closing); the radius then grows with the square root of the elapsed time.

The physical radius allows for particles down to 30 nm; for a sample of large, slow particles
filmed at a low frame rate (1 µm beads at 2 fps: 114 px) it spans several neighbours and joins
them. :func:`observed_step_extent_px` measures how far the detections of one frame have partners
in the next beyond chance, and :func:`linking_radius_px` narrows the radius to that when the data
show the physical one to be far too wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from exocheck.errors import ParameterError
from exocheck.nta import _kernels
from exocheck.physics import diffusion_um2_s


@dataclass(frozen=True)
class LinkSettings:
    """Linking settings.

    Attributes
    ----------
    min_diameter_nm : float
        Smallest particle the search radius must allow for. Smaller particles move further between
        frames; 30 nm is below what scattering NTA detects for vesicles.
    miss_probability : float
        Probability that a step of the smallest particle exceeds the search radius.
    max_drift_um_s : float
        Drift speed the radius allows for on top of Brownian motion.
    memory : int
        Frames a particle may be missing and still be linked (gap closing).
    search_radius_px : float or None
        Fixed radius, overriding the physical one.
    """

    min_diameter_nm: float = 30.0
    miss_probability: float = 1e-3
    max_drift_um_s: float = 10.0
    memory: int = 2
    search_radius_px: float | None = None

    def __post_init__(self) -> None:
        if not self.min_diameter_nm > 0:
            raise ParameterError("min_diameter_nm must be > 0")
        if not 0 < self.miss_probability < 1:
            raise ParameterError("miss_probability must be between 0 and 1")
        if self.memory < 0:
            raise ParameterError("memory must be >= 0")
        if self.search_radius_px is not None and not self.search_radius_px > 0:
            raise ParameterError("search_radius_px must be > 0")


def search_radius_px(
    settings: LinkSettings,
    fps: float,
    pixel_size_um: float,
    temperature_c: float,
    viscosity_mpa_s: float | None = None,
) -> float:
    """The physical search radius for one frame interval, pixels."""
    if settings.search_radius_px is not None:
        return settings.search_radius_px
    d = diffusion_um2_s(settings.min_diameter_nm, temperature_c, viscosity_mpa_s)
    sigma_um = math.sqrt(2.0 * d / fps)  # per axis
    brownian_um = sigma_um * math.sqrt(-2.0 * math.log(settings.miss_probability))
    return (brownian_um + settings.max_drift_um_s / fps) / pixel_size_um


STEP_BINS = 30
"""Bins of the consecutive-frame distance histogram over the physical radius."""
STEP_EXCESS_SD = 3.0
"""A bin's excess over chance counts when it is this many Poisson standard deviations."""


def _random_pairs(n_pairs: float, edges: np.ndarray, width: float, height: float) -> np.ndarray:
    """Expected pairs per distance bin for points placed independently and uniformly in a
    ``width`` × ``height`` rectangle (its set covariance W·H − 2r(W+H)/π + r²/π corrects the
    plain 2πr·dr/area for pairs that the edges cut off)."""
    r = 0.5 * (edges[1:] + edges[:-1])
    covariance = width * height - 2.0 * r * (width + height) / np.pi + r**2 / np.pi
    density = 2.0 * np.pi * r * np.clip(covariance, 0.0, None) / (width * height) ** 2
    return n_pairs * density * np.diff(edges)


def observed_step_extent_px(
    features: pd.DataFrame, radius_px: float, width: float, height: float
) -> float:
    """Distance up to which detections have partners in the next frame beyond chance, px.

    Distances from each detection to every detection of the next frame within ``radius_px`` are
    binned (:data:`STEP_BINS` bins) and the pairs expected from independent placement are
    subtracted. Going outwards from the largest excess, the extent ends before the first two
    consecutive bins whose excess is under :data:`STEP_EXCESS_SD` Poisson standard deviations.
    Returns ``radius_px`` when the excess reaches the last bin (steps as long as the radius).
    """
    from scipy.spatial import cKDTree

    frame = features["frame"].to_numpy()
    xy = features[["x", "y"]].to_numpy(dtype=np.float64)
    edges = np.linspace(0.0, radius_px, STEP_BINS + 1)
    counts = np.zeros(STEP_BINS)
    n_pairs = 0.0
    order = np.argsort(frame, kind="stable")
    frame, xy = frame[order], xy[order]
    starts = np.flatnonzero(np.r_[True, np.diff(frame) != 0])
    stops = np.r_[starts[1:], frame.size]
    for k in range(len(starts) - 1):
        a, b = slice(starts[k], stops[k]), slice(starts[k + 1], stops[k + 1])
        if frame[starts[k + 1]] != frame[starts[k]] + 1:
            continue
        tree = cKDTree(xy[b])
        near = cKDTree(xy[a]).sparse_distance_matrix(tree, radius_px, output_type="ndarray")
        counts += np.histogram(near["v"], edges)[0]
        n_pairs += (stops[k] - starts[k]) * (stops[k + 1] - starts[k + 1])
    if n_pairs == 0:
        return float(radius_px)
    expected = _random_pairs(n_pairs, edges, width, height)
    significant = counts - expected > STEP_EXCESS_SD * np.sqrt(expected + 1.0)
    peak = int(np.argmax(counts - expected))
    if not significant[peak]:  # no detectable link structure (a near-empty video)
        return float(radius_px)
    for k in range(peak, STEP_BINS - 1):
        if not significant[k] and not significant[k + 1]:
            return float(edges[k])
    return float(radius_px)


def linking_radius_px(
    features: pd.DataFrame,
    settings: LinkSettings,
    fps: float,
    pixel_size_um: float,
    temperature_c: float,
    viscosity_mpa_s: float | None,
    width: float,
    height: float,
) -> float:
    """The radius to link ``features`` with, px.

    A fixed ``settings.search_radius_px`` is used as given. Otherwise the physical radius
    (:func:`search_radius_px`), narrowed to twice the observed step extent
    (:func:`observed_step_extent_px`) where that is under half of it: no particle then moves
    anywhere near as far as the physical radius allows, which would only join neighbours (large
    particles at a low frame rate). Where small particles are present their steps reach the
    physical radius and it stays.
    """
    physical = search_radius_px(settings, fps, pixel_size_um, temperature_c, viscosity_mpa_s)
    if settings.search_radius_px is not None or features.empty:
        return physical
    narrowed = 2.0 * observed_step_extent_px(features, physical, width, height)
    return narrowed if narrowed < 0.5 * physical else physical


def link(features: pd.DataFrame, radius_px: float, memory: int = 2) -> pd.DataFrame:
    """Assign a ``particle`` id to every feature; ids are consecutive from 0 in order of birth.

    Parameters
    ----------
    features : DataFrame
        Columns ``frame, x, y`` (others carried along), any order.
    radius_px : float
        Largest displacement between consecutive frames.
    memory : int
        Largest number of frames a particle may be missing.
    """
    if not radius_px > 0:
        raise ParameterError("search radius must be > 0")
    feats = features.sort_values(["frame", "y", "x"], kind="stable").reset_index(drop=True)
    particle = _kernels.link_frames(
        feats["frame"].to_numpy(dtype=np.int64),
        feats["x"].to_numpy(dtype=np.float64),
        feats["y"].to_numpy(dtype=np.float64),
        float(radius_px),
        int(memory),
    )
    out = feats.copy()
    out["particle"] = particle
    return out


def split_at_jumps(tracks: pd.DataFrame, factor: float = 5.0, min_steps: int = 4) -> pd.DataFrame:
    """Split tracks where one step is far longer than the track's own typical step.

    Brownian step lengths in 2-D follow a Rayleigh law, for which a step longer than ``factor``
    times the median step has probability exp(−factor² ln 2) (≈ 3e-8 for 5). Such a step is a
    mislink (two particles joined where they passed close, or one vanished as another appeared), and
    it would make the track look like a much smaller particle. The two parts get separate ids.
    """
    t = tracks.sort_values(["particle", "frame"], kind="stable").reset_index(drop=True)
    if t.empty:  # nothing detected (a clean control): nothing to split
        return t
    pid = t["particle"].to_numpy()
    same = np.concatenate([[False], pid[1:] == pid[:-1]])
    step = np.zeros(len(t))
    gap = np.ones(len(t))
    step[1:] = np.hypot(np.diff(t["x"].to_numpy()), np.diff(t["y"].to_numpy()))
    gap[1:] = np.maximum(np.diff(t["frame"].to_numpy()), 1)
    step = np.where(same, step / np.sqrt(gap), np.nan)  # per-frame-equivalent step
    counts = pd.Series(same).groupby(pid).transform("sum").to_numpy()
    median = pd.Series(step).groupby(pid).transform("median").to_numpy()
    jump = same & (counts >= min_steps) & (step > factor * median)
    if not jump.any():
        return t
    new_segment = np.concatenate([[True], ~same[1:]]) | jump
    t["particle"] = np.cumsum(new_segment) - 1
    return t
