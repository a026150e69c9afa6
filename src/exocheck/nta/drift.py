"""Ensemble drift: estimate the common motion of all particles per frame and remove it.

Brownian displacements average to zero over many particles; a uniform flow does not. The drift
between consecutive frames is the median displacement of all particles present in both (robust to
mislinks), smoothed over ``smoothing_frames`` so that removing it takes away a negligible share of
each particle's own Brownian motion (about 1 / (particles per frame × smoothing_frames)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def estimate_drift(tracks: pd.DataFrame, smoothing_frames: int = 25) -> pd.DataFrame:
    """Cumulative drift per frame, pixels: a DataFrame indexed by frame with columns ``x, y``."""
    t = tracks.sort_values(["particle", "frame"], kind="stable")
    same = (t["particle"].to_numpy()[1:] == t["particle"].to_numpy()[:-1]) & (
        np.diff(t["frame"].to_numpy()) == 1
    )
    frame_to = t["frame"].to_numpy()[1:][same]
    dx = np.diff(t["x"].to_numpy())[same]
    dy = np.diff(t["y"].to_numpy())[same]
    first, last = int(tracks["frame"].min()), int(tracks["frame"].max())
    frames = np.arange(first, last + 1)
    steps = pd.DataFrame({"frame": frame_to, "dx": dx, "dy": dy}).groupby("frame").median()
    steps = steps.reindex(frames[1:]).interpolate(limit_direction="both").fillna(0.0)
    if len(steps) >= 2:
        size = min(smoothing_frames, len(steps))
        smooth = _moving_average(steps.to_numpy(), size)
    else:
        smooth = steps.to_numpy()
    cumulative = np.vstack([[0.0, 0.0], np.cumsum(smooth, axis=0)])
    return pd.DataFrame(cumulative, index=pd.Index(frames, name="frame"), columns=["x", "y"])


def _moving_average(values: np.ndarray, size: int) -> np.ndarray:
    """Running mean over ``size`` rows, edges extended with the end values.

    Same window as ``scipy.ndimage.uniform_filter1d(values, size, axis=0, mode="nearest")``: output
    row ``i`` averages input rows ``i − size//2 … i − size//2 + size − 1``.
    """
    left = size // 2
    padded = np.pad(values, ((left, size - 1 - left), (0, 0)), mode="edge")
    summed = np.cumsum(np.vstack([np.zeros((1, values.shape[1])), padded]), axis=0)
    return (summed[size:] - summed[:-size]) / size


def subtract_drift(tracks: pd.DataFrame, drift: pd.DataFrame) -> pd.DataFrame:
    """Tracks with the cumulative drift removed from ``x`` and ``y``."""
    out = tracks.copy()
    d = drift.reindex(out["frame"].to_numpy()).to_numpy()
    out["x"] = out["x"].to_numpy() - d[:, 0]
    out["y"] = out["y"].to_numpy() - d[:, 1]
    return out
