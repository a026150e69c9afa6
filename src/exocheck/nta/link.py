"""Linking features into tracks: nearest neighbours within a physical search radius.

The search radius is the displacement that the smallest particle of interest exceeds between two
frames with probability below 1e-3 (Brownian steps in 2-D have a Rayleigh-distributed length), plus
an allowance for drift. Candidate links are resolved globally per frame by increasing distance, so
the result does not depend on the order of features. A particle may vanish for up to ``memory``
frames (gap closing); the radius then grows with the square root of the elapsed time.
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
