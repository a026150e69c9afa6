"""Particle detection: background removal, smoothing, local maxima and sub-pixel centroids.

Works on chunks of frames at once (``[n, height, width]`` arrays) so the per-frame Python overhead is
negligible; :func:`locate_video` streams a whole video through it with both cores.

Output columns follow trackpy: ``frame, x, y, mass, size, signal`` (pixels and camera counts), where
``x`` is the column and ``y`` the row coordinate with pixel centres at integers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exocheck.errors import AnalysisError, ParameterError
from exocheck.nta import _kernels

if TYPE_CHECKING:  # pandas is imported where tables are built: detection can start without it
    import pandas as pd

FEATURE_COLUMNS = ("frame", "x", "y", "mass", "size", "signal", "ep")
# pixel types the compiled kernels take as they are (anything else is converted to float32 first)
_KERNEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
LEVEL_STEP_PX = 8  # pixel subsampling of the per-frame level (median)
CHUNK_FRAMES = 32  # frames processed together (at most workers + 1 chunks in flight)


@dataclass(frozen=True)
class LocateSettings:
    """Detection settings.

    Attributes
    ----------
    smoothing_sigma_px : float
        Width of the Gaussian that suppresses pixel noise before detection (≈ the PSF width).
    threshold_sigma : float
        Detection threshold in units of the smoothed image's noise standard deviation, measured
        robustly on the video itself. 5 keeps false detections in pure noise below about one per
        ten frames of 640×480 and, since they do not link into tracks, a buffer-only video yields
        practically no particles.
    threshold_counts : float or None
        Fixed threshold in camera counts above background (overrides ``threshold_sigma``).
    radius_px : int
        Half-size of the centroid window and minimum separation of two maxima.
    invert : bool
        Dark particles on a bright background (bright-field video).
    mask_sigma_px : float
        Width of the Gaussian mask of the sub-pixel refinement (≈ the spot's width).
    mask_iterations : int
        Iterations of the Gaussian-mask refinement (0 = plain centroid).
    background_frames : int
        Frames from the start of the video used for the static background (temporal median).
    scale_search : bool
        When one object gives several maxima (out-of-focus rings, large defocused particles: a
        clear excess of close pairs of maxima within a frame, see :func:`multi_maxima`), detect at
        a scale (smoothing, window, mask and separation grown together) at which a typical ring
        is one blob (:func:`ring_scale_factor`), so that one object is one detection, found at its
        centre. Where the configured scale shows no clear excess (the spots of NTA videos), it is
        kept.
    """

    smoothing_sigma_px: float = 1.0
    threshold_sigma: float = 5.0
    threshold_counts: float | None = None
    radius_px: int = 4
    invert: bool = False
    background_frames: int = 100
    mask_sigma_px: float = 1.5
    mask_iterations: int = 6
    scale_search: bool = True

    def __post_init__(self) -> None:
        if not self.smoothing_sigma_px > 0:
            raise ParameterError("smoothing_sigma_px must be > 0")
        if not self.threshold_sigma > 0:
            raise ParameterError("threshold_sigma must be > 0")
        if self.threshold_counts is not None and not self.threshold_counts > 0:
            raise ParameterError("threshold_counts must be > 0")
        if not self.mask_sigma_px > 0 or self.mask_iterations < 0:
            raise ParameterError("mask_sigma_px must be > 0 and mask_iterations >= 0")
        if not 1 <= self.radius_px <= 50:
            raise ParameterError("radius_px must be between 1 and 50")


def static_background(frames: np.ndarray, invert: bool = False) -> np.ndarray:
    """Temporal median of a stack of frames (moving particles vanish from it), float32."""
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise AnalysisError("need at least one frame to estimate the background")
    # 31 frames spread over the stack: a moving particle covers any pixel in few of them
    step = max(1, -(-frames.shape[0] // 31))
    sample = np.ascontiguousarray(frames[::step])
    if sample.dtype in (np.uint8, np.uint16):  # the common camera formats: compiled, ~10× faster
        bg = np.empty(frames.shape[1:], np.float32)
        _kernels.temporal_median(sample, int(np.iinfo(sample.dtype).max), bg)
    else:
        bg = np.median(sample, axis=0).astype(np.float32)
    return -bg if invert else bg


def preprocess(
    chunk: np.ndarray,
    background: np.ndarray,
    settings: LocateSettings,
    out: np.ndarray | None = None,
    threshold: float = np.inf,
    row_above: np.ndarray | None = None,
) -> np.ndarray:
    """Background-subtracted, level-corrected, smoothed float32 frames.

    Each frame becomes ``G ⋆ (±frame − background − level)``: the static background (temporal
    median) removes the spatial illumination pattern, ``level`` (the frame's median over every 8th
    pixel in both directions: its standard error is 2 % of the noise SD) follows laser-power and
    camera-offset drifts over time, and the Gaussian ``G`` of ``smoothing_sigma_px`` (truncated at
    3σ, reflecting borders) suppresses pixel noise. One compiled pass per frame
    (:func:`exocheck.nta._kernels.smooth_frames`). ``out``, a float32 array of at least
    ``chunk``'s shape, is reused when given (fresh memory costs page faults on every chunk).
    ``row_above``, a bool ``[n, height]`` array, receives whether each smoothed row has a pixel
    above ``threshold`` (for :func:`find_features`).
    """
    if chunk.ndim != 3:
        raise AnalysisError("frames must be a [n, height, width] array")
    frames = chunk if chunk.dtype in _KERNEL_DTYPES else chunk.astype(np.float32)
    if out is None or out.shape[1:] != chunk.shape[1:] or out.shape[0] < chunk.shape[0]:
        out = np.empty(chunk.shape, np.float32)
    out = out[: chunk.shape[0]]
    if row_above is None or row_above.shape != chunk.shape[:2] or row_above.dtype != np.bool_:
        row_above = np.empty(chunk.shape[:2], np.bool_)
    _kernels.smooth_frames(
        np.ascontiguousarray(frames),
        np.ascontiguousarray(background, dtype=np.float32),
        -1.0 if settings.invert else 1.0,
        _kernels.gaussian_kernel(settings.smoothing_sigma_px),
        LEVEL_STEP_PX,
        min(float(threshold), float(np.finfo(np.float32).max)),
        out,
        row_above,
    )
    return out


def noise_sigma(smoothed: np.ndarray) -> float:
    """Robust standard deviation of smoothed, background-free frames (median absolute deviation).

    Measured on every 2nd pixel of up to 8 odd-numbered frames: some 10⁵–10⁶ values, which fix the
    SD to a fraction of a percent. Odd frames because :func:`static_background` takes every 4th of
    the first 100 frames, and a frame that is part of the background median has about 3 % less
    residual noise.
    """
    frames = smoothed[1::2] if smoothed.shape[0] > 1 else smoothed
    step = max(1, -(-frames.shape[0] // 8))
    sample = frames[::step, ::2, ::2].ravel()
    med = np.median(sample)
    return float(1.4826 * np.median(np.abs(sample - med)))


@functools.lru_cache(maxsize=16)
def centroid_noise_gain(settings: LocateSettings) -> float:
    """Factor K with var(x_centroid) = σ_raw² K / J² for white pixel noise of SD σ_raw.

    The centroid c solves Σ_p (p − c) m_p I_p = 0 over the disk, I being the smoothed image and m
    the Gaussian mask (1 without refinement); J is that sum's response to a shift (the ``gain`` of
    :func:`exocheck.nta._kernels.refine_centroids`). Pixel noise n enters I through the smoothing
    kernel g, so the sum's noise is Σ_q n_q (g ⋆ dx·m·disk)_q, whose variance is
    σ_raw² Σ_q (g ⋆ dx·m·disk)_q².
    """
    r = settings.radius_px
    pad = r + int(np.ceil(3 * settings.smoothing_sigma_px)) + 1
    grid = np.zeros((2 * pad + 1, 2 * pad + 1))
    dy, dx = _disk(r)
    grid[dy + pad, dx + pad] = dx
    if settings.mask_iterations:
        grid[dy + pad, dx + pad] *= np.exp(-(dy**2 + dx**2) / (2.0 * settings.mask_sigma_px**2))
    taps = _kernels.gaussian_kernel(settings.smoothing_sigma_px).astype(float)
    # the grid's zero margin is wider than the kernel, so a zero-padded convolution is exact
    spread = np.apply_along_axis(np.convolve, 0, grid, taps, mode="same")
    spread = np.apply_along_axis(np.convolve, 1, spread, taps, mode="same")
    return float(np.sum(spread**2))


@functools.lru_cache(maxsize=16)
def _disk(radius: int) -> tuple[np.ndarray, np.ndarray]:  # shared arrays: do not modify
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    inside = dy**2 + dx**2 <= radius**2 + 0.5
    return dy[inside], dx[inside]


def find_features(
    smoothed: np.ndarray,
    threshold: float,
    settings: LocateSettings,
    first_frame: int = 0,
    raw_sigma: float = 0.0,
    row_above: np.ndarray | None = None,
) -> pd.DataFrame:
    """Local maxima above ``threshold`` and their refined sub-pixel centroids.

    A pixel is a feature when it is the maximum of the disk of ``radius_px`` around it. Its position
    is the intensity-weighted centroid over that disk, recentred up to three times when the centroid
    lies more than half a pixel from the window centre (as trackpy does). ``ep`` is the expected
    localisation error per axis (px) from the pixel noise ``raw_sigma`` (see
    :func:`centroid_noise_gain`). ``row_above`` (which rows have a pixel above ``threshold``, from
    :func:`preprocess`) saves a pass over the frames.
    """
    import pandas as pd

    return pd.DataFrame(_features(smoothed, threshold, settings, first_frame, raw_sigma, row_above))


def _features(
    smoothed: np.ndarray,
    threshold: float,
    settings: LocateSettings,
    first_frame: int,
    raw_sigma: float,
    row_above: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """:func:`find_features` as a dict of columns."""
    r = settings.radius_px
    dy, dx = _disk(r)
    smoothed = np.ascontiguousarray(smoothed, dtype=np.float32)
    if row_above is None:
        row_above = (smoothed > np.float32(threshold)).any(axis=2)
    found = _kernels.local_maxima(smoothed, row_above, threshold, r, dy, dx)
    f, y, x = found[:, 0], found[:, 1], found[:, 2]
    refined = _kernels.refine_centroids(
        smoothed, f, y, x, r, dy, dx, settings.mask_sigma_px, settings.mask_iterations
    )
    cy, cx, mass, rg2, signal, gain = refined.T
    ep = raw_sigma * np.sqrt(centroid_noise_gain(settings)) / np.clip(gain, 1e-6, None)
    return {
        "frame": (f + first_frame).astype(np.int64),
        "x": cx,
        "y": cy,
        "mass": mass,
        "size": np.sqrt(np.clip(rg2, 0, None)),
        "signal": signal,
        "ep": ep,
    }


@dataclass
class LocateResult:
    """Features of a whole video plus what detection measured about it."""

    features: pd.DataFrame
    background: np.ndarray
    noise_sigma: float
    threshold: float
    n_frames: int
    raw_noise_sigma: float = 0.0
    settings: LocateSettings | None = None  # the settings detection used (scale search applied)


MULTI_MAXIMA_PER_FEATURE = 0.2
"""Excess close pairs per detection above which objects are taken to give several maxima."""
MULTI_MAXIMA_Z = 5.0
"""... and the excess must also stand this many Poisson standard deviations above chance."""
PAIR_BINS = 20
"""Distance bins of the close-pair count (:func:`multi_maxima`)."""


@dataclass(frozen=True)
class PairExcess:
    """Close pairs of detections within frames, against independent placement."""

    per_feature: float  # excess pairs per detection
    z: float  # excess in Poisson standard deviations of the expected count
    median_distance_px: float  # median distance of the excess pairs (nan without excess)

    @property
    def clear(self) -> bool:
        """Whether objects clearly give several maxima each."""
        return self.per_feature >= MULTI_MAXIMA_PER_FEATURE and self.z >= MULTI_MAXIMA_Z


def multi_maxima(
    features: pd.DataFrame | dict[str, np.ndarray],
    width: int,
    height: int,
    r_min_px: float,
    r_max_px: float,
) -> PairExcess:
    """Excess of close pairs of detections within frames over independent placement.

    Independent particles are placed at random with respect to each other: the number of pairs
    at distances between ``r_min_px`` (the detector's minimum separation: no pair is closer) and
    ``r_max_px`` in a frame of ``n`` detections is about n(n−1)/2 · π (r_max² − r_min²) / area
    (edge effects aside). Several maxima from one object (the spots of an out-of-focus ring, the
    lobes of a large particle) add pairs at distances up to the object's size; the median
    distance of the excess (counted in :data:`PAIR_BINS` bins, negative bins as zero) measures
    that size.
    """
    from scipy.spatial import cKDTree

    frame = np.asarray(features["frame"])
    x = np.asarray(features["x"], dtype=np.float64)
    y = np.asarray(features["y"], dtype=np.float64)
    if frame.size < 2:
        return PairExcess(0.0, 0.0, float("nan"))
    order = np.argsort(frame, kind="stable")
    frame, x, y = frame[order], x[order], y[order]
    bounds = np.flatnonzero(np.diff(frame)) + 1
    edges = np.linspace(r_min_px, r_max_px, PAIR_BINS + 1)
    observed = np.zeros(PAIR_BINS)
    pairs = 0.0
    for xs, ys in zip(np.split(x, bounds), np.split(y, bounds), strict=True):
        n = xs.size
        if n < 2:
            continue
        i, j = cKDTree(np.column_stack([xs, ys])).query_pairs(r_max_px, output_type="ndarray").T
        observed += np.histogram(np.hypot(xs[i] - xs[j], ys[i] - ys[j]), edges)[0]
        pairs += n * (n - 1) / 2.0
    expected = pairs * np.pi * np.diff(edges**2) / float(width * height)
    excess = float(observed.sum() - expected.sum())
    z = excess / max(float(np.sqrt(expected.sum())), 1.0)
    positive = np.clip(observed - expected, 0.0, None)
    median = float("nan")
    if positive.sum() > 0:
        cumulative = np.cumsum(positive) / positive.sum()
        k = int(np.searchsorted(cumulative, 0.5))
        below = cumulative[k - 1] if k > 0 else 0.0
        share = (0.5 - below) / max(cumulative[k] - below, 1e-12)
        median = float(edges[k] + share * (edges[k + 1] - edges[k]))
    return PairExcess(excess / frame.size, z, median)


def ring_scale_factor(pairs: PairExcess, settings: LocateSettings) -> float:
    """How much to grow the detection scale so that a ring-shaped object is one blob.

    Pairs of maxima on one ring of radius R lie a chord apart, on average (4/π)·R; a ring blurred
    by a Gaussian of σ has its maximum at the centre once σ ≥ R/√2. The typical ring's radius is
    taken from the median distance of the excess pairs.
    """
    if not pairs.clear or not np.isfinite(pairs.median_distance_px):
        return 1.0
    radius_px = pairs.median_distance_px * np.pi / 4.0
    return max(1.0, radius_px / np.sqrt(2.0) / settings.smoothing_sigma_px)


def _scaled(settings: LocateSettings, factor: float) -> LocateSettings:
    """``settings`` with smoothing, mask, window and separation grown by ``factor``."""
    return replace(
        settings,
        smoothing_sigma_px=settings.smoothing_sigma_px * factor,
        mask_sigma_px=settings.mask_sigma_px * factor,
        radius_px=max(settings.radius_px, round(settings.radius_px * factor)),
    )


def _pair_range_px(settings: LocateSettings) -> tuple[float, float]:
    """Distances between which pairs of maxima are counted: from the detector's separation (no
    two maxima are closer) to six times it (the spots of a ring several spot widths across)."""
    return float(settings.radius_px), 6.0 * settings.radius_px


def locate_video(
    chunks: Iterable[tuple[int, np.ndarray]],
    background: np.ndarray,
    settings: LocateSettings,
    n_frames: int,
    progress: Callable[[int], None] | None = None,
    workers: int = 2,
) -> LocateResult:
    """Detect features in every frame of a chunked video, using ``workers`` threads.

    ``chunks`` yields ``(first_frame_index, frames)``; the noise level (and so the automatic
    threshold) is measured on the first chunk. numpy/scipy release the GIL in the heavy loops, so
    threads use both cores without copying frames between processes.
    """
    iterator: Iterator[tuple[int, np.ndarray]] = iter(chunks)
    try:
        start0, chunk0 = next(iterator)
    except StopIteration:
        raise AnalysisError("the video has no frames") from None
    raw = chunk0[: min(8, chunk0.shape[0])].astype(np.float32)
    raw_sigma = noise_sigma(raw - np.median(raw, axis=0))
    raw_sigma *= np.sqrt(raw.shape[0] / max(raw.shape[0] - 1, 1))  # median of n removes ~1/n
    base = settings

    def first_chunk(settings: LocateSettings) -> tuple[float, float, dict[str, np.ndarray]]:
        smoothed0 = preprocess(chunk0, background, settings)
        sigma = noise_sigma(smoothed0)
        if settings.threshold_counts is not None:
            threshold = settings.threshold_counts
        else:
            if sigma <= 0:
                raise AnalysisError("the video has no measurable noise (constant frames?)")
            threshold = settings.threshold_sigma * sigma
        return sigma, threshold, _features(smoothed0, threshold, settings, start0, raw_sigma, None)

    sigma, threshold, first = first_chunk(settings)
    if base.scale_search:
        pairs = multi_maxima(first, chunk0.shape[2], chunk0.shape[1], *_pair_range_px(base))
        factor = ring_scale_factor(pairs, base)
        if factor > 1.0:
            settings = _scaled(base, factor)
            sigma, threshold, first = first_chunk(settings)

    buffers = threading.local()  # one smoothed-frames buffer per worker thread, reused

    def work(item: tuple[int, np.ndarray]) -> dict[str, np.ndarray]:
        start, chunk = item
        rows = np.empty(chunk.shape[:2], np.bool_)
        out = getattr(buffers, "out", None)
        smoothed = preprocess(chunk, background, settings, out, threshold, rows)
        buffers.out = smoothed
        return _features(smoothed, threshold, settings, start, raw_sigma, rows)

    parts = [first]
    if progress:
        progress(chunk0.shape[0])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = []
        for item in iterator:
            pending.append((item[1].shape[0], pool.submit(work, item)))
            while len(pending) > workers:  # bounded: memory does not grow with video length
                size, fut = pending.pop(0)
                parts.append(fut.result())
                if progress:
                    progress(size)
        for size, fut in pending:
            parts.append(fut.result())
            if progress:
                progress(size)
    import pandas as pd

    columns = {c: np.concatenate([p[c] for p in parts]) for c in FEATURE_COLUMNS}
    order = np.lexsort((columns["x"], columns["y"], columns["frame"]))  # stable, by frame, y, x
    features = pd.DataFrame({c: v[order] for c, v in columns.items()})
    return LocateResult(
        features, background, sigma, float(threshold), n_frames, raw_sigma, settings
    )


def detect_video(
    path: str | Path,
    settings: LocateSettings,
    chunk_frames: int = CHUNK_FRAMES,
    progress: Callable[[int], None] | None = None,
    workers: int = 2,
) -> LocateResult:
    """Features of every frame of a video file: background, threshold, maxima, centroids.

    The static background comes from the first ``settings.background_frames`` frames; a video
    whose first frames are all identical is refused (a blank or still image). Needs neither the
    frame rate nor the pixel size, so it can start before the rest of an analysis is set up.
    """
    from exocheck.io.video import open_video

    path = Path(path)
    with open_video(path) as video:
        n_frames = video.meta.n_frames
        n_bg = min(settings.background_frames, n_frames)
        head = video.read(0, n_bg)
        if head.size == 0 or (head == head[:1]).all():
            raise AnalysisError(
                f"{path}: no particles found: the first {n_bg} frames are identical "
                "(a blank or still image?)"
            )
        background = static_background(head, settings.invert)
        del head
        try:
            return locate_video(
                video.iter_chunks(chunk_frames),
                background,
                settings,
                n_frames,
                progress=progress,
                workers=workers,
            )
        except AnalysisError as exc:  # the locator does not know the file: name it
            raise AnalysisError(f"{path}: {exc}") from None
