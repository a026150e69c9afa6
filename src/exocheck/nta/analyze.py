"""The NTA pipeline end to end: video → features → tracks → drift → diffusion → sizes → concentration.

:func:`analyze_video` runs one video and returns plain data; :func:`analyze` runs replicate videos of
one sample and assembles the :class:`~exocheck.records.Measurement` record. Both are usable from a
notebook exactly as the command line uses them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from exocheck import __version__
from exocheck.errors import AnalysisError, ParameterError
from exocheck.nta import checks
from exocheck.nta.concentration import (
    Calibration,
    analysed_area_um2,
    concentration_per_ml,
    mie_brightness_ratio,
    relative_depth,
    track_brightness_ratio,
)
from exocheck.nta.diffusion import (
    choose_lag,
    ensemble_from_sums,
    increment_spread,
    lag_statistics,
    msd_sums_by_track,
    track_statistics,
)
from exocheck.nta.drift import estimate_drift, subtract_drift
from exocheck.nta.link import (
    LinkSettings,
    link,
    linking_radius_px,
    split_at_jumps,
)
from exocheck.nta.locate import CHUNK_FRAMES, LocateResult, LocateSettings, detect_video
from exocheck.nta.sizing import (
    CV_FOLDS,
    LIMIT_MARGIN,
    SizeResult,
    SizingSettings,
    size_distribution,
)
from exocheck.physics import scattering_cross_sections_nm2
from exocheck.records import (
    Channel,
    Concentration,
    Interval,
    Measurement,
    Provenance,
    SizeDistribution,
    SizePeak,
    Source,
    TrackSummary,
    VideoSummary,
)


@dataclass(frozen=True)
class Conditions:
    """Acquisition conditions. ``None`` means: take it from the file's metadata."""

    fps: float | None = None
    pixel_size_um: float | None = None
    temperature_c: float = 25.0
    exposure_ms: float | None = None
    viscosity_mpa_s: float | None = None
    refractive_index: float | None = None
    camera_gain: float | None = None
    wavelength_nm: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "fps",
            "pixel_size_um",
            "exposure_ms",
            "viscosity_mpa_s",
            "refractive_index",
            "camera_gain",
            "wavelength_nm",
        ):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ParameterError(f"{name} must be a finite number > 0, got {value}")
        if self.fps and self.exposure_ms and self.exposure_ms > 1000.0 / self.fps * (1 + 1e-9):
            raise ParameterError(
                f"exposure {self.exposure_ms:g} ms is longer than the frame interval "
                f"{1000 / self.fps:.4g} ms"
            )
        if not -10.0 <= self.temperature_c <= 100.0:
            raise ParameterError(
                f"temperature_c must be between -10 and 100 °C, got {self.temperature_c}"
            )


@dataclass(frozen=True)
class AnalysisSettings:
    """Every setting of the analysis (defaults suit NanoSight-class scattering videos)."""

    locate: LocateSettings = field(default_factory=LocateSettings)
    link: LinkSettings = field(default_factory=LinkSettings)
    sizing: SizingSettings = field(default_factory=SizingSettings)
    min_track_frames: int = 10
    drift_correction: bool = True
    workers: int = 2
    check_polarity: bool = True  # refuse a video whose particles have the other polarity
    mode: str = "scatter"  # "scatter" or "fluorescence" (light from fluorophores behind a filter)

    def __post_init__(self) -> None:
        if self.mode not in ("scatter", "fluorescence"):
            raise ParameterError(f"mode must be 'scatter' or 'fluorescence', got {self.mode!r}")


@dataclass
class VideoAnalysis:
    """Everything measured on one video.

    ``checksum`` is the input file's SHA-256, or the future of it while it is being computed
    beside the analysis; read it as :attr:`sha256`.
    """

    path: Path
    checksum: str | Future[str]
    n_frames: int
    fps: float
    pixel_size_um: float
    exposure_ms: float
    exposure_assumed: bool
    width_px: int
    height_px: int
    features: pd.DataFrame
    tracks: pd.DataFrame  # features linked, drift-corrected
    track_stats: pd.DataFrame
    drift_um_s: tuple[float, float]
    noise_sigma: float
    threshold: float
    search_radius_px: float
    particles_per_frame: float
    concentration_per_ml: float
    area_um2: float = 0.0
    detection_sigma_px: float = 1.0  # smoothing detection used (grown for ring-shaped objects)
    step_lag_frames: int = 1
    bleach_rate_per_s: float = 0.0  # fluorescence: fluorophores' bleaching at the sheet's centre
    saturated_fraction: float | None = None  # fluorescence: share of tracks at full scale

    @property
    def sha256(self) -> str:
        """SHA-256 of the input (of its frames' names and contents for a frame folder)."""
        if isinstance(self.checksum, Future):
            self.checksum = self.checksum.result()
        return self.checksum


def _resolve(meta_value: float | None, override: float | None, name: str, path: Path) -> float:
    value = override if override is not None else meta_value
    if value is None:
        flag = name.replace("_", "-")
        raise ParameterError(f"{path}: the file does not state {name}; pass --{flag}")
    return float(value)


def analyze_video(
    path: str | Path,
    conditions: Conditions,
    settings: AnalysisSettings | None = None,
    calibration: Calibration | None = None,
    progress: Callable[[int], None] | None = None,
    detection: LocateResult | Future[LocateResult] | None = None,
    checksum: str | None = None,
) -> VideoAnalysis:
    """Detect, link and measure the particles of one video (sizing is done over all replicates).

    ``detection`` is this video's detection when it was started beforehand (a future of
    :func:`exocheck.nta.locate.detect_video` with ``settings.locate``), e.g. while the rest of the
    program was still loading; otherwise detection runs here. ``checksum`` is the input's SHA-256
    when the caller has computed it already (a batch's client): it is then not computed again.
    """
    from exocheck.io.video import open_video

    settings = settings or AnalysisSettings()
    path = Path(path)
    with open_video(
        path,
        fps=conditions.fps,
        pixel_size_um=conditions.pixel_size_um,
        exposure_ms=conditions.exposure_ms,
    ) as video:
        meta = video.meta
        fps = _resolve(meta.fps, conditions.fps, "fps", path)
        pixel_size_um = _resolve(
            meta.pixel_size_um, conditions.pixel_size_um, "pixel_size_um", path
        )
        exposure_assumed = meta.exposure_ms is None and conditions.exposure_ms is None
        exposure_ms = (
            conditions.exposure_ms
            if conditions.exposure_ms is not None
            else (meta.exposure_ms if meta.exposure_ms is not None else 0.5 * 1000.0 / fps)
        )
        if exposure_ms > 1000.0 / fps * (1 + 1e-9):
            raise ParameterError(
                f"{path}: exposure {exposure_ms:g} ms is longer than the frame interval "
                f"{1000 / fps:.4g} ms"
            )
        if meta.n_frames < settings.min_track_frames:
            raise AnalysisError(
                f"{path}: {meta.n_frames} frames; at least {settings.min_track_frames} are needed"
            )
    if settings.check_polarity and detection is None:  # a detection handed in was checked
        checks.check_polarity(path, settings.locate.invert)  # by whoever started it
    if detection is None:
        located = detect_video(path, settings.locate, CHUNK_FRAMES, progress, settings.workers)
    elif isinstance(detection, Future):
        located = detection.result()
    else:
        located = detection
    # The input's checksum (provenance) is computed beside the rest of the analysis, which
    # leaves a core idle (detection keeps both busy); it releases the GIL while hashing.
    hashing: str | Future[str] = checksum or ""
    if not checksum:
        hasher = ThreadPoolExecutor(max_workers=1)
        hashing = hasher.submit(checks.sha256_input, path)
        hasher.shutdown(wait=False)
    n_frames, height, width = meta.n_frames, meta.height, meta.width
    radius = linking_radius_px(
        located.features,
        settings.link,
        fps,
        pixel_size_um,
        conditions.temperature_c,
        conditions.viscosity_mpa_s,
        width,
        height,
    )
    linked = split_at_jumps(link(located.features, radius, settings.link.memory))
    lengths = linked.groupby("particle")["frame"].transform("size")
    linked = linked[lengths >= 3].reset_index(drop=True)  # single-frame noise never links
    if linked.empty:
        raise AnalysisError(f"{path}: no particles found (a blank or buffer-only video?)")
    drift_um_s = (0.0, 0.0)
    tracks = linked
    if settings.drift_correction:
        drift = estimate_drift(linked)
        tracks = subtract_drift(linked, drift)
        span = drift.index[-1] - drift.index[0]
        if span > 0:
            total = drift.iloc[-1] - drift.iloc[0]
            drift_um_s = (
                float(total["x"] * pixel_size_um * fps / span),
                float(total["y"] * pixel_size_um * fps / span),
            )
    stats = track_statistics(
        tracks, fps, pixel_size_um, exposure_ms / 1000.0, settings.min_track_frames
    )
    used = located.settings or settings.locate
    area = analysed_area_um2(width, height, used.radius_px, pixel_size_um)
    conc, per_frame = concentration_per_ml(linked, n_frames, area, located.threshold, calibration)
    return VideoAnalysis(
        path=path,
        checksum=hashing if hashing is not None else "",
        n_frames=n_frames,
        fps=fps,
        pixel_size_um=pixel_size_um,
        exposure_ms=float(exposure_ms),
        exposure_assumed=exposure_assumed,
        width_px=width,
        height_px=height,
        features=located.features,
        tracks=tracks,
        track_stats=stats,
        drift_um_s=drift_um_s,
        noise_sigma=located.noise_sigma,
        threshold=located.threshold,
        search_radius_px=radius,
        particles_per_frame=per_frame,
        concentration_per_ml=conc,
        area_um2=area,
        detection_sigma_px=used.smoothing_sigma_px,
    )


def size_videos(
    videos: Sequence[VideoAnalysis], conditions: Conditions, settings: AnalysisSettings
) -> SizeResult:
    """One size distribution from the tracks of all replicate videos together.

    Single-frame displacements are used when the ensemble MSD grows linearly from lag 1 (any
    Brownian video, whatever its noise and blur). When the shortest displacements are suppressed
    (compressed or temporally filtered recordings), the first lag from which growth is linear is
    used instead, with the offset of the MSD line measured on the ensemble (see
    :func:`exocheck.nta.diffusion.choose_lag`); the lag is recorded on each video.
    """
    stats = pd.concat([v.track_stats for v in videos], ignore_index=True)
    frame_s = np.array([1.0 / v.fps for v in videos])
    exposure_s = np.array([v.exposure_ms / 1000.0 for v in videos])
    if np.ptp(frame_s) > 1e-9 or np.ptp(exposure_s) > 1e-9:
        raise ParameterError("replicate videos must share frame rate and exposure")
    parts = [msd_sums_by_track(v.tracks, v.pixel_size_um) for v in videos]
    sums = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    msd = ensemble_from_sums(sums, counts)
    lag, slope = choose_lag(msd, spread=increment_spread(sums, counts))
    for v in videos:
        v.step_lag_frames = lag
    # The counting corrections rest on the light-sheet scattering model (a particle is detected
    # while its scattered light exceeds the threshold); a bright-field video (inverted: dark
    # particles, absorption contrast) has no such model, and its tracks count once each.
    scattering = not settings.locate.invert
    n_tracks = len(stats)
    # Visits too short to size are counted through their brightness class in scatter, where
    # brightness falls steeply with size (about d⁶). In fluorescence it falls only with the
    # membrane area (or not at all, for antibodies), and the same weights over-counted the small
    # labelled vesicles: on simulated dye-labelled EVs, D50 −7.4 % with them, −1.9 % without.
    fluorescence = settings.mode == "fluorescence"
    weights = short_track_weights(videos) if scattering and not fluorescence else np.ones(n_tracks)
    groups = time_blocks(videos)
    if lag == 1:
        msd_lag = stats["msd1_um2"].to_numpy()
        n_lag = stats["n_steps"].to_numpy().astype(float)
        sigma2 = stats["sigma2_model_um2"].to_numpy()
        offset_s = None
    else:
        parts = [
            lag_statistics(v.tracks, v.track_stats["particle"].to_numpy(), lag, v.pixel_size_um)
            for v in videos
        ]
        msd_lag = np.concatenate([p[0] for p in parts])
        n_lag = np.concatenate([p[1] for p in parts])
        missing = ~(n_lag > 0)  # tracks broken by gaps everywhere: a weak, lag-scaled stand-in
        msd_lag[missing] = stats["msd1_um2"].to_numpy()[missing] * lag
        n_lag[missing] = 0.5
        sigma2 = stats["ep2_um2"].to_numpy()
        # MSD(n) = slope·n − slope·t₀/Δt + 2σ² for n ≥ lag: t₀ from the ensemble line
        offset_s = float(frame_s[0]) * (lag - (msd[lag - 1] - 2.0 * float(np.mean(sigma2))) / slope)

    def solve(
        min_diameter_nm: float | None, weights: np.ndarray, sizing: SizingSettings
    ) -> SizeResult:
        return size_distribution(
            msd_lag,
            n_lag,
            sigma2,
            float(frame_s[0]),
            float(exposure_s[0]),
            conditions.temperature_c,
            conditions.viscosity_mpa_s,
            sizing,
            lag=lag,
            offset_s=offset_s,
            min_diameter_nm=min_diameter_nm,
            track_weights=weights,
            track_groups=groups,
        )

    # First pass: tracks counted for the short tracks of their brightness class. It gives each
    # track a size, from which its particle's in-focus brightness and detection depth follow;
    # the second pass counts each track with the inverse of that depth and, with a refractive
    # index, starts the grid at the detection limit (nothing below it can have been seen,
    # whatever a noisy short track suggests).
    first = solve(
        None, weights, replace(settings.sizing, n_bootstrap=0, smoothing=FIRST_PASS_SMOOTHING)
    )
    if scattering and not fluorescence and brightness_size_line(videos, first) is None:
        # The brightness classes stand for size only where brightness follows size; where it
        # does not (a monodisperse sample, rings whose brightness is set by their depth), the
        # classes' weights count noise: 1 µm ring-shaped beads at 2 fps had D50 −25 % with them,
        # −5 % without.
        weights = np.ones(n_tracks)
    if scattering:
        weights = weights / relative_depth_by_size(videos, first)
    if settings.mode == "fluorescence":
        # a fluorescent track can end because its particle faded, not because it left the slab
        from exocheck.nta.fluorescence import (
            DepthModel,
            bleaching_factors,
            estimate_bleach_rate,
            significant_bleach_rate,
        )

        model = DepthModel()
        rate, se = estimate_bleach_rate(videos, model, settings.min_track_frames)
        rate = significant_bleach_rate(rate, se)
        faded = bleaching_factors(
            videos,
            first.track_diameter_nm,
            model,
            rate,
            conditions.temperature_c,
            conditions.viscosity_mpa_s,
            settings.min_track_frames,
        )
        weights = weights / faded
        for v in videos:
            v.bleach_rate_per_s = rate
        offset = 0
        for v in videos:  # the concentration counts faded particles too
            n = len(v.track_stats)
            f = faded[offset : offset + n]
            offset += n
            frames = v.track_stats["n_frames"].to_numpy(float)
            if n and frames.sum() > 0:
                v.concentration_per_ml *= float(np.sum(frames / f) / np.sum(frames))
    limit = detection_limit_nm(videos, first, conditions)
    use_limit = limit is not None and limit * LIMIT_MARGIN > first.diameter_nm[0]
    return solve(limit if use_limit else None, weights / weights.mean(), settings.sizing)


MIN_LIMIT_SLOPE_T = 4.0
"""t-statistic the slope of log brightness on log size must reach before the fitted line is
taken as a size effect (:func:`brightness_size_line`): a monodisperse sample has no spread in
size to fit a slope on, and its line says nothing about size."""

LIMIT_SLOPE_RANGE = (1.0, 6.0)
"""Physical range of that slope: scattered light grows as d⁶ for particles much smaller than the
wavelength and about as d² for large ones; a fitted slope outside it is not a size effect."""


def brightness_size_line(
    videos: Sequence[VideoAnalysis], size: SizeResult
) -> tuple[float, float] | None:
    """The tracks' brightness–size line, log peak over threshold on log size: (slope, intercept)
    where the slope is clearly positive (:data:`MIN_LIMIT_SLOPE_T` standard errors) and physical
    (:data:`LIMIT_SLOPE_RANGE`); None otherwise (a monodisperse sample, or brightness set by
    something other than size, such as the depth of an out-of-focus ring).

    Least squares over the sized tracks with a finite, positive brightness and size.
    """
    ratios = []
    for v in videos:
        r = track_brightness_ratio(v.tracks, v.threshold)
        ratios.append(r.reindex(v.track_stats["particle"].to_numpy()).to_numpy(dtype=float))
    ratio = np.concatenate(ratios) if ratios else np.zeros(0)
    diameter = np.asarray(size.track_diameter_nm, float)
    ok = np.isfinite(ratio) & (ratio > 0) & (diameter > 0)
    if ok.sum() < 20:
        return None
    x, y = np.log(diameter[ok]), np.log(ratio[ok])
    var_x = float(np.var(x, ddof=1))
    if var_x <= 0:
        return None
    slope = float(np.cov(x, y)[0, 1] / var_x)
    resid = y - float(np.mean(y)) - slope * (x - float(np.mean(x)))
    se = float(np.sqrt(np.sum(resid**2) / (x.size - 2) / (var_x * (x.size - 1))))
    if (
        not (LIMIT_SLOPE_RANGE[0] <= slope <= LIMIT_SLOPE_RANGE[1])
        or slope < MIN_LIMIT_SLOPE_T * se
    ):
        return None
    return slope, float(np.mean(y)) - slope * float(np.mean(x))


def relative_depth_by_size(videos: Sequence[VideoAnalysis], size: SizeResult) -> np.ndarray:
    """Each sized track's detection depth relative to the median, from its particle's size.

    A track's own brightest frame is a poor measure of its particle's in-focus brightness: a
    track that never crosses focus looks dim whatever its size, and weighting such tracks by
    their own dimness over-counts whatever they happen to look like. The brightness is therefore
    predicted from the track's size, by a straight line fitted to log brightness against log size
    over all tracks (no refractive index or Mie model needed, and for a monodisperse sample the
    line is flat to within its noise). Mie theory is not used here: on simulated EVs its d⁶-like
    growth, put into the Gaussian-slab depth model, over-counted the small particles (D50 −4 to
    −6 %), because the slab model overstates how much deeper a bright particle is seen when the
    spot also widens out of focus.
    """
    ratios = []
    for v in videos:
        r = track_brightness_ratio(v.tracks, v.threshold)
        ratios.append(r.reindex(v.track_stats["particle"].to_numpy()).to_numpy(dtype=float))
    ratio = np.concatenate(ratios)
    diameter = np.asarray(size.track_diameter_nm, float)
    ok = np.isfinite(ratio) & (ratio > 0) & (diameter > 0)
    if ok.sum() < 5:
        return np.ones(ratio.size)
    x, y = np.log(diameter[ok]), np.log(ratio[ok])
    slope = float(np.cov(x, y)[0, 1] / np.var(x, ddof=1)) if np.ptp(x) > 0 else 0.0
    predicted = np.exp(
        float(np.mean(y)) + slope * (np.log(np.maximum(diameter, 1e-9)) - float(np.mean(x)))
    )
    return relative_depth(predicted, float(np.median(predicted)))


BRIGHTNESS_CLASSES = 8
"""Brightness classes in which the tracks too short to size are counted (see
:func:`short_track_weights`); fewer when there are under 50 sized tracks per class."""


FIRST_PASS_SMOOTHING = 1e-5
"""λ per track of the first sizing pass, which only gives each track a size (for its detection
depth) and the detection limit: a fixed, moderate smoothing is enough for that and costs one
solve instead of a cross-validation."""


def time_blocks(videos: Sequence[VideoAnalysis]) -> np.ndarray:
    """A cross-validation block per sized track: which of :data:`~exocheck.nta.sizing.CV_FOLDS`
    equal spans of its video's frames holds the track's first frame.

    The size distribution's cross-validation holds out whole blocks, so a held-out track is
    predicted by tracks of other times. One particle's presence is often cut into several
    tracks (it dims at the slab's edge, a neighbour takes its place for a frame), and a fit that
    holds one piece is rewarded for a spike at that particle's size when the other piece is held
    out. Chains of such pieces, joined by proximity, percolated in dense captures into one
    component of nearly every track (1,144 of 1,148 at 170 particles per frame), leaving one fold
    with almost all of them. Blocks of time are independent but for the few particles seen
    across a boundary, and equal in size whatever the density. Block k of every replicate
    video is one fold.
    """
    blocks = [
        np.minimum(
            CV_FOLDS * v.track_stats["first_frame"].to_numpy() // max(v.n_frames, 1), CV_FOLDS - 1
        )
        for v in videos
    ]
    return np.concatenate(blocks).astype(np.int64) if blocks else np.zeros(0, dtype=np.int64)


def short_track_weights(videos: Sequence[VideoAnalysis]) -> np.ndarray:
    """How much each sized track counts for the visits too short to size.

    Every linked track (≥ 3 frames) is a particle's visit to the detection slab, but only those
    of ≥ ``min_track_frames`` are sized. Dim particles, small ones above all, are lost under the
    threshold more often, so fewer of their visits give a sizable track. The sized tracks of each
    brightness class (quantiles of the sized tracks' peak over threshold) stand for all tracks of
    that class: each counts (all tracks) / (sized tracks) of its class. The inverse detection
    depth is applied on top (:func:`relative_depth_by_size`); together they give the number
    distribution of the particles in the sample above the detection limit, not of the tracks.
    """
    sized_parts, all_parts = [], []
    for v in videos:
        ratio = track_brightness_ratio(v.tracks, v.threshold)
        sized_parts.append(ratio.reindex(v.track_stats["particle"].to_numpy()).to_numpy(float))
        all_parts.append(ratio.to_numpy(dtype=float))
    sized = np.concatenate(sized_parts)
    every = np.concatenate(all_parts)
    ok = np.isfinite(sized)
    if ok.sum() < 5:
        return np.ones(sized.size)
    reference = float(np.median(sized[ok]))
    sized = np.where(ok, sized, reference)
    every = every[np.isfinite(every)]
    n_classes = int(np.clip(sized.size // 50, 1, BRIGHTNESS_CLASSES))
    inner = np.quantile(np.log(sized), np.linspace(0, 1, n_classes + 1)[1:-1])
    sized_class = np.searchsorted(inner, np.log(sized))
    every_class = np.searchsorted(inner, np.log(np.clip(every, 1e-12, None)))
    per_class = np.bincount(every_class, minlength=n_classes) / np.maximum(
        np.bincount(sized_class, minlength=n_classes), 1
    )
    weights = np.maximum(per_class[sized_class], 1.0)
    return weights / weights.mean()


def detection_limit_nm(
    videos: Sequence[VideoAnalysis], size: SizeResult, conditions: Conditions
) -> float | None:
    """Smallest diameter whose in-focus peak would reach the threshold, for the given index.

    Each track's brightness (peak over threshold) is set against the Mie cross-section of its own
    estimated size; the median ratio gives the brightness per nm² of cross-section, and the limit is
    where the cross-section's brightness equals the threshold. Needs ``refractive_index``.
    """
    if conditions.refractive_index is None:
        return None
    ratios, sizes = [], []
    offset = 0
    for v in videos:
        r = track_brightness_ratio(v.tracks, v.threshold)
        n = len(v.track_stats)
        d = size.track_diameter_nm[offset : offset + n]
        offset += n
        ratios.append(r.reindex(v.track_stats["particle"]).to_numpy())
        sizes.append(d)
    ratio = np.concatenate(ratios)
    diameter = np.concatenate(sizes)
    ok = np.isfinite(ratio) & (diameter > 0)
    if ok.sum() < 5:
        return None
    csca = scattering_cross_sections_nm2(diameter[ok], conditions.refractive_index)
    per_nm2 = float(np.median(ratio[ok] / csca))
    grid = np.geomspace(5.0, 5000.0, 400)
    above = per_nm2 * scattering_cross_sections_nm2(
        grid, conditions.refractive_index, points_per_decade=60
    )
    idx = int(np.argmax(above >= 1.0))
    return float(grid[idx]) if above[idx] >= 1.0 else None


def analyze(
    paths: Sequence[str | Path],
    conditions: Conditions,
    settings: AnalysisSettings | None = None,
    calibration: Calibration | None = None,
    sample: str | None = None,
    progress: Callable[[int], None] | None = None,
    dilution_factor: float | None = None,
    detections: Sequence[LocateResult | Future[LocateResult] | None] | None = None,
    calibration_override: str | None = None,
    allow_reuse: str | None = None,
    checksums: Sequence[str | None] | None = None,
    override: str | None = None,
) -> tuple[Measurement, list[VideoAnalysis], SizeResult | None]:
    """Analyse replicate videos of one sample into one measurement record.

    A fluorescence capture with too few tracks to size (a clean control) is not an error: its
    record counts the tracks seen, with a Poisson interval, and no size distribution
    (:mod:`exocheck.nta.sparse`); no :class:`SizeResult` is returned for it (None).

    ``dilution_factor`` (≥ 1) is how much the sample was diluted before measurement: the record's
    ``concentration.particles_per_ml`` refers to the undiluted sample, ``measured_per_ml`` to the
    measurement cell. ``detections`` may hold, per video, a detection already under way (see
    :func:`analyze_video`); ``checksums``, per video, its SHA-256 when already known.

    A calibration made on other optics is refused unless ``calibration_override`` gives the
    reason; the same input given twice, unless ``allow_reuse`` does; a frame rate, pixel size or
    exposure in ``conditions`` that contradicts what a video file states, unless ``override``
    does (see :mod:`exocheck.nta.checks`). The reasons are kept in the record.
    """
    settings = settings or AnalysisSettings()
    if settings.mode == "fluorescence":
        # a refractive index sets the scatter detection limit; fluorescence is seen by its label
        conditions = replace(conditions, refractive_index=None)
    checks.check_dilution(dilution_factor)
    dilution = dilution_factor or 1.0
    if not paths:
        raise ParameterError("no video given")
    overridden = checks.check_override(checks.video_contradictions(paths, conditions), override)
    mismatch = None
    if calibration is not None:
        found = [
            checks.calibration_optics(calibration, _optics(p, conditions), calibration_override)
            for p in paths
        ]
        mismatch = "; ".join(dict.fromkeys(m for m in found if m)) or None
    early = list(detections or [])
    early += [None] * (len(paths) - len(early))
    known = list(checksums or [None] * len(paths))
    try:
        videos = [
            analyze_video(p, conditions, settings, calibration, progress, d, c)
            for p, d, c in zip(paths, early, known, strict=True)
        ]
        reused = checks.check_duplicate_inputs(
            [str(v.path) for v in videos], [v.sha256 for v in videos], allow_reuse
        )
        size = size_videos(videos, conditions, settings)
    except AnalysisError as exc:
        from exocheck.nta.sparse import sparse_analysis, too_few_tracks

        if settings.mode != "fluorescence" or not too_few_tracks(exc):
            raise
        # a clean control, or a sample that (almost) nothing labels: a result, counted
        measurement, seen = sparse_analysis(
            paths, conditions, settings, calibration, sample, dilution_factor, progress, str(exc)
        )
        return measurement, seen, None
    warnings: list[str] = []
    if reused:
        warnings.append(f"the same data used twice ({'; '.join(reused)}): {allow_reuse}")
    if mismatch:
        warnings.append(
            f"calibration from other optics ({mismatch}), used because: {calibration_override}; "
            "the concentration is not used for release"
        )
    if calibration is not None:
        _mie_concentrations(videos, size, conditions, calibration, warnings)
    if videos[0].step_lag_frames > 1:
        warnings.append(
            "the shortest displacements are suppressed (a compressed or temporally filtered "
            f"video?): sizes come from {videos[0].step_lag_frames}-frame displacements"
        )
    if any(v.exposure_assumed for v in videos) and videos[0].step_lag_frames == 1:
        warnings.append(
            "exposure time not in the file: assumed half the frame interval for the motion-blur "
            "correction; pass --exposure-ms for exact sizes"
        )
    n_tracks = int(sum(len(v.track_stats) for v in videos))
    fluorescence: dict[str, Any] = {}
    if settings.mode == "fluorescence":
        from exocheck.nta.fluorescence import saturated_share

        for v in videos:
            v.saturated_fraction = saturated_share(v)
        fluorescence["saturated_track_fraction"] = float(
            np.mean([v.saturated_fraction for v in videos])
        )
        if fluorescence["saturated_track_fraction"] > 0.05:
            warnings.append(
                f"{fluorescence['saturated_track_fraction']:.0%} of the tracks saturate the "
                "camera: their brightness, and so their detection depth, is underestimated"
            )
        rate = videos[0].bleach_rate_per_s
        if rate > 0:
            warnings.append(
                f"photobleaching measured (half-life {math.log(2.0) / rate:.2g} s at the "
                "sheet's centre): counts and size weights are corrected for particles that faded"
            )
    if n_tracks < 100:
        warnings.append(f"only {n_tracks} tracks: size statistics are uncertain")
    conc = np.array([v.concentration_per_ml for v in videos])
    mean_conc = float(conc.mean())
    sd_conc = float(conc.std(ddof=1)) if conc.size > 1 else None
    # Poisson counting error of the particles per frame (frames are ~independent after a few
    # frame times) combined with the replicate spread, as a 95 % interval
    counted = sum(v.particles_per_frame * v.n_frames for v in videos)
    rel_poisson = 1.0 / math.sqrt(max(counted / 10.0, 1.0))
    rel = (
        rel_poisson
        if sd_conc is None
        else math.hypot(rel_poisson, sd_conc / mean_conc / math.sqrt(conc.size))
    )
    limit = detection_limit_nm(videos, size, conditions)
    density = size.weights / size.weights.sum()
    first = videos[0]
    measurement = Measurement(
        source=record_source(videos),
        sample=sample or first.path.stem,
        temperature_c=conditions.temperature_c,
        viscosity_mpa_s=conditions.viscosity_mpa_s,
        size=SizeDistribution(
            bin_edges_nm=size.bin_edges_nm.tolist(),
            density=density.tolist(),
            **size.stats,
            density_ci_low=(size.weights_ci_low / size.weights.sum()).tolist(),
            density_ci_high=(size.weights_ci_high / size.weights.sum()).tolist(),
            peaks=[SizePeak(**asdict(p)) for p in size.peaks],
            ci={k: Interval(low=lo, high=hi) for k, (lo, hi) in size.ci.items()},
        ),
        dilution_factor=dilution_factor,
        concentration=Concentration(
            particles_per_ml=mean_conc * dilution,
            measured_per_ml=mean_conc,
            dilution_factor=dilution_factor,
            calibrated=calibration is not None,
            calibration_mismatch=mismatch,
            ci=Interval(
                low=mean_conc * dilution * max(1 - 1.96 * rel, 0.0),
                high=mean_conc * dilution * (1 + 1.96 * rel),
            ),
            sd_per_ml=sd_conc * dilution if sd_conc is not None else None,
        ),
        tracks=TrackSummary(
            count=n_tracks,
            mean_length_frames=float(
                np.mean(np.concatenate([v.track_stats["n_frames"].to_numpy() for v in videos]))
            ),
        ),
        particles_per_frame=float(np.mean([v.particles_per_frame for v in videos])),
        per_video=[_video_summary(v, size, i, videos) for i, v in enumerate(videos)],
        channel=record_channel(
            "fluorescence" if settings.mode == "fluorescence" else "scatter",
            videos,
            conditions,
            settings,
        ),
        settings={
            **recorded_inputs(videos, conditions, settings, calibration),
            "calibration_override": calibration_override if mismatch else None,
            "allow_reuse": allow_reuse if reused else None,
            "override": (
                {"reason": override.strip(), "differences": overridden} if overridden else None
            ),
        },
        diagnostics={
            "detection_limit_nm": limit,
            "step_lag_frames": videos[0].step_lag_frames,
            "size_smoothing_per_track": size.smoothing,
            "size_effective_parameters": size.effective_df,
            "size_track_classes": size.n_classes,
            "size_below_range_fraction": size.below_range_fraction,
            "drift_um_s": [list(v.drift_um_s) for v in videos],
            **fluorescence,
            **(
                {
                    "bleach_half_life_s": (
                        math.log(2.0) / first.bleach_rate_per_s
                        if first.bleach_rate_per_s > 0
                        else None
                    )
                }
                if settings.mode == "fluorescence"
                else {}
            ),
            "noise_sigma_counts": [v.noise_sigma for v in videos],
            "localisation_sigma_um": float(
                np.sqrt(
                    np.median(
                        np.concatenate(
                            [v.track_stats["sigma2_model_um2"].to_numpy() for v in videos]
                        )
                    )
                )
            ),
        },
        provenance=Provenance(inputs=_input_hashes(videos)),
        warnings=warnings,
    )
    checks.check_result(
        measurement.concentration.particles_per_ml or 0.0,
        measurement.size.d50_nm,
        measurement.size.mode_nm,
        measurement.size.bin_edges_nm,
    )
    return measurement, videos, size


def _optics(path: str | Path, conditions: Conditions) -> dict[str, float | None]:
    """The optics of a video: its metadata, overridden by the conditions given."""
    from exocheck.io.video import open_video

    with open_video(Path(path)) as video:
        meta = video.meta
    pick = lambda given, found: given if given is not None else found  # noqa: E731
    return {
        "pixel_size_um": pick(conditions.pixel_size_um, meta.pixel_size_um),
        "fps": pick(conditions.fps, meta.fps),
        "exposure_ms": pick(conditions.exposure_ms, meta.exposure_ms),
        "camera_gain": conditions.camera_gain,
        "wavelength_nm": conditions.wavelength_nm,
    }


def _mie_concentrations(
    videos: Sequence[VideoAnalysis],
    size: SizeResult,
    conditions: Conditions,
    calibration: Calibration,
    warnings: list[str],
) -> None:
    """Recount calibrated concentrations with Mie-scaled brightness from each track's size."""
    if conditions.refractive_index is None or calibration.bead_diameter_nm is None:
        warnings.append(
            "brightness of each particle taken from its brightest frame (saturates on large "
            "particles): pass --refractive-index and calibrate with --bead-diameter-nm for "
            "Mie-scaled detection volumes"
        )
        return
    offset = 0
    for v in videos:
        n = len(v.track_stats)
        diameters = pd.Series(
            size.track_diameter_nm[offset : offset + n], index=v.track_stats["particle"].to_numpy()
        )
        offset += n
        ratio = mie_brightness_ratio(diameters, conditions.refractive_index, calibration)
        v.concentration_per_ml, _ = concentration_per_ml(
            v.tracks, v.n_frames, v.area_um2, v.threshold, calibration, ratio
        )


def _video_summary(
    v: VideoAnalysis, size: SizeResult, index: int, videos: Sequence[VideoAnalysis]
) -> VideoSummary:
    start = sum(len(w.track_stats) for w in videos[:index])
    d = size.track_diameter_nm[start : start + len(v.track_stats)]
    return VideoSummary(
        name=v.path.name,
        concentration_per_ml=v.concentration_per_ml,
        particles_per_frame=v.particles_per_frame,
        tracks=len(v.track_stats),
        d50_nm=float(np.median(d)) if d.size else None,
    )


def _input_hashes(videos: Sequence[VideoAnalysis]) -> dict[str, str]:
    """SHA-256 of each input by file name, or by path where replicates share a file name."""
    names = [v.path.name for v in videos]
    unique = len(set(names)) == len(names)
    return {(v.path.name if unique else str(v.path)): v.sha256 for v in videos}


def record_source(videos: Sequence[VideoAnalysis]) -> Source:
    """Where a record comes from: exocheck itself, its videos, the first one's SHA-256."""
    return Source(
        instrument="exocheck",
        software_version=__version__,
        file_sha256=videos[0].sha256 or None,
        files=[v.path.name for v in videos],
    )


def record_channel(
    mode: str,
    videos: Sequence[VideoAnalysis],
    conditions: Conditions,
    settings: AnalysisSettings,
) -> Channel:
    """The channel a record states: its mode and the settings that set its detection volume
    (those of the first video)."""
    first = videos[0]
    return Channel(
        mode=mode,
        laser_wavelength_nm=conditions.wavelength_nm,
        settings={
            "fps": first.fps,
            "exposure_ms": first.exposure_ms,
            "pixel_size_um": first.pixel_size_um,
            "min_track_frames": settings.min_track_frames,
            "threshold_counts": first.threshold,
        },
    )


def recorded_inputs(
    videos: Sequence[VideoAnalysis],
    conditions: Conditions,
    settings: AnalysisSettings,
    calibration: Any,
) -> dict[str, Any]:
    """What a record's settings say of its inputs: conditions, analysis settings, each video's
    optics and the calibration."""
    return {
        "conditions": asdict(conditions),
        "analysis": recorded_settings(settings),
        "per_video": [
            {
                "file": v.path.name,
                "fps": v.fps,
                "pixel_size_um": v.pixel_size_um,
                "exposure_ms": v.exposure_ms,
                "exposure_assumed": v.exposure_assumed,
                "frames": v.n_frames,
                "search_radius_px": v.search_radius_px,
                "detection_sigma_px": v.detection_sigma_px,
                "threshold_counts": v.threshold,
            }
            for v in videos
        ],
        "calibration": asdict(calibration) if calibration else None,
    }


def recorded_settings(settings: AnalysisSettings) -> dict[str, Any]:
    """The settings that determine the result, as recorded in it.

    ``workers`` (detection threads) is left out: it changes how fast, never what, is measured, so
    a video analysed on one thread (a batch worker) has the same record as on two.
    """
    recorded = asdict(settings)
    recorded.pop("workers", None)
    return recorded


def calibrate(
    path: str | Path,
    known_concentration_per_ml: float,
    conditions: Conditions,
    bead_diameter_nm: float | None = None,
    settings: AnalysisSettings | None = None,
    progress: Callable[[int], None] | None = None,
    override: str | None = None,
) -> Calibration:
    """Effective detection depth from a bead standard of known concentration.

    The beads' size distribution is measured too (``measured_d10_nm`` … ``measured_d90_nm``):
    whether the video is fit to calibrate with, its size against the certified diameter and a
    single narrow peak, is decided by :func:`exocheck.methods.calibrations.check_standard`, which
    every shell applies. A frame rate, pixel size or exposure in ``conditions`` that contradicts
    the file is refused unless ``override`` gives the reason (kept in the calibration).
    """
    if not (math.isfinite(known_concentration_per_ml) and known_concentration_per_ml > 0):
        raise ParameterError("known concentration must be a finite number > 0")
    if bead_diameter_nm is not None and not (
        math.isfinite(bead_diameter_nm) and bead_diameter_nm > 0
    ):
        raise ParameterError(
            f"bead diameter must be a finite number > 0 nm, got {bead_diameter_nm}"
        )
    overridden = checks.check_override(checks.video_contradictions([path], conditions), override)
    settings = settings or AnalysisSettings()
    v = analyze_video(path, conditions, settings, None, progress)
    ratio = track_brightness_ratio(v.tracks, v.threshold)
    reference = float(np.median(ratio))
    if reference <= 1.0:
        raise AnalysisError(f"{path}: beads are not brighter than the detection threshold")
    rel = pd.Series(relative_depth(ratio, reference), index=ratio.index)
    rel_of_feature = v.tracks["particle"].map(rel).to_numpy()
    area = v.area_um2
    # Σ 1/(A·depth_b·rel) / n_frames = c  ⇒  depth_b = Σ(1/rel) / (A·c·n_frames)
    depth_um = float(
        np.sum(1.0 / rel_of_feature) / (area * known_concentration_per_ml * 1e-12 * v.n_frames)
    )
    # the beads' size distribution, for the acceptance check (no intervals needed)
    sized = size_videos(
        [v], conditions, replace(settings, sizing=replace(settings.sizing, n_bootstrap=0))
    )
    return Calibration(
        depth_um=depth_um,
        bead_brightness_ratio=reference,
        bead_diameter_nm=bead_diameter_nm,
        known_concentration_per_ml=known_concentration_per_ml,
        pixel_size_um=v.pixel_size_um,
        fps=v.fps,
        temperature_c=conditions.temperature_c,
        source_sha256=v.sha256,
        exposure_ms=None if v.exposure_assumed else v.exposure_ms,
        camera_gain=conditions.camera_gain,
        wavelength_nm=conditions.wavelength_nm,
        measured_d10_nm=sized.stats.get("d10_nm"),
        measured_d50_nm=sized.stats.get("d50_nm"),
        measured_d90_nm=sized.stats.get("d90_nm"),
        override=f"{override.strip()} ({'; '.join(overridden)})" if overridden else None,
    )
