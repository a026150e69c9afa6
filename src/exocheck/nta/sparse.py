"""Fluorescence captures with too few tracks to size: what was seen, counted, with a Poisson bound.

A clean control (an unstained sample through the long-pass filter, label in buffer) shows nothing
or a handful of fleeting spots: that is the good case, and the most common one. So may a sample in
which (almost) nothing carries the label. Such a capture is a result, never a stop: its tracks
(every linked track of 3 frames or more) are counted, each in the slab its brightest frame is seen
in, and the count's uncertainty is Poisson's (Garwood's exact interval; with no track at all, the
bound is that of 3.7 tracks like the ones a sized capture would count, see :func:`count_seen`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import chi2

from exocheck.errors import AnalysisError

if TYPE_CHECKING:
    from exocheck.nta.analyze import AnalysisSettings, Conditions, VideoAnalysis
    from exocheck.nta.concentration import Calibration
    from exocheck.nta.fluorescence import DepthModel
    from exocheck.records import Measurement

LEVEL = 0.95
"""Confidence level of the Poisson intervals."""

_TOO_FEW = ("no particles found", "no track is", "usable tracks: at least")


def too_few_tracks(exc: AnalysisError) -> bool:
    """Whether an analysis stopped because the capture held too few tracks to size."""
    return any(text in str(exc) for text in _TOO_FEW)


def poisson_interval(n_counted: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact two-sided interval (Garwood) for a Poisson mean from ``n_counted`` events.

    With no event the upper bound is ``-ln((1 - level) / 2)``: 3.69 at 95 %.
    """
    alpha = 1.0 - level
    low = 0.0 if n_counted <= 0 else float(chi2.ppf(alpha / 2, 2 * n_counted) / 2)
    high = float(chi2.ppf(1 - alpha / 2, 2 * n_counted + 2) / 2)
    return low, high


def seen_video(
    path: str | Path,
    conditions: Conditions,
    settings: AnalysisSettings,
    progress: Callable[[int], None] | None = None,
) -> VideoAnalysis:
    """Detect and link one video, keeping every track of 3 frames or more; nothing is sized.

    ``track_stats`` is empty: none of the tracks is measured for its size.
    """
    from exocheck.io.video import open_video
    from exocheck.nta import checks
    from exocheck.nta.analyze import CHUNK_FRAMES, VideoAnalysis, _resolve
    from exocheck.nta.concentration import analysed_area_um2, concentration_per_ml
    from exocheck.nta.link import link, linking_radius_px, split_at_jumps
    from exocheck.nta.locate import detect_video

    path = Path(path)
    with open_video(
        path,
        fps=conditions.fps,
        pixel_size_um=conditions.pixel_size_um,
        exposure_ms=conditions.exposure_ms,
    ) as video:
        meta = video.meta
    fps = _resolve(meta.fps, conditions.fps, "fps", path)
    pixel_size_um = _resolve(meta.pixel_size_um, conditions.pixel_size_um, "pixel_size_um", path)
    exposure_assumed = meta.exposure_ms is None and conditions.exposure_ms is None
    exposure_ms = (
        conditions.exposure_ms
        if conditions.exposure_ms is not None
        else (meta.exposure_ms if meta.exposure_ms is not None else 0.5 * 1000.0 / fps)
    )
    located = detect_video(path, settings.locate, CHUNK_FRAMES, progress, settings.workers)
    radius = linking_radius_px(
        located.features,
        settings.link,
        fps,
        pixel_size_um,
        conditions.temperature_c,
        conditions.viscosity_mpa_s,
        meta.width,
        meta.height,
    )
    columns = [*located.features.columns, "particle"]
    tracks = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    if not located.features.empty:
        linked = split_at_jumps(link(located.features, radius, settings.link.memory))
        lengths = linked.groupby("particle")["frame"].transform("size")
        tracks = linked[lengths >= 3].reset_index(drop=True)
    used = located.settings or settings.locate
    area = analysed_area_um2(meta.width, meta.height, used.radius_px, pixel_size_um)
    conc, per_frame = 0.0, 0.0
    if not tracks.empty:
        conc, per_frame = concentration_per_ml(tracks, meta.n_frames, area, located.threshold, None)
    return VideoAnalysis(
        path=path,
        checksum=checks.sha256_input(path),
        n_frames=meta.n_frames,
        fps=fps,
        pixel_size_um=pixel_size_um,
        exposure_ms=float(exposure_ms),
        exposure_assumed=exposure_assumed,
        width_px=meta.width,
        height_px=meta.height,
        features=located.features,
        tracks=tracks,
        track_stats=pd.DataFrame({"particle": pd.Series(dtype=np.int64)}),
        drift_um_s=(0.0, 0.0),
        noise_sigma=located.noise_sigma,
        threshold=located.threshold,
        search_radius_px=radius,
        particles_per_frame=per_frame,
        concentration_per_ml=conc,
        area_um2=area,
        detection_sigma_px=used.smoothing_sigma_px,
    )


@dataclass(frozen=True)
class SeenCounts:
    """A capture's tracks counted without sizes.

    ``per_ml`` is the concentration in the measurement cell that the tracks seen stand for (each
    track's detections over its slab, area and frames); ``per_track_per_ml`` what one track
    stands for on average (the tracks' own mean, or with none a reference track's);
    ``n_tracks`` how many were seen.
    """

    n_tracks: int
    per_ml: float
    per_track_per_ml: float

    def interval_per_ml(self, level: float = LEVEL) -> tuple[float, float]:
        """The concentration's Poisson interval (Garwood) from the number of tracks seen."""
        low, high = poisson_interval(self.n_tracks, level)
        return low * self.per_track_per_ml, high * self.per_track_per_ml

    def resample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draws of the concentration from the count's Jeffreys posterior, Gamma(n + ½).

        Unlike a resample of the tracks, it is not zero when none was seen: a clean control's
        count could have been a few tracks, and the subtraction's interval says so.
        """
        return rng.gamma(self.n_tracks + 0.5, 1.0, size=n) * self.per_track_per_ml


def track_frames_over_depth(
    videos: Sequence[VideoAnalysis], model: DepthModel, calibration: Calibration | None = None
) -> np.ndarray:
    """Per linked track (≥ 3 frames): its detections over its slab, frames/µm.

    The slab comes from the track's brightest frame over threshold (:meth:`DepthModel.depth_um`),
    scaled to a bead calibration's measured depth when one is given.
    """
    from exocheck.nta.concentration import track_brightness_ratio

    parts = []
    for v in videos:
        if v.tracks.empty:
            continue
        ratio = track_brightness_ratio(v.tracks, v.threshold)
        frames = v.tracks.groupby("particle")["frame"].size().reindex(ratio.index)
        depth = model.depth_um(ratio.to_numpy(float))
        if calibration is not None:
            depth = depth * _calibration_scale(model, calibration)
        parts.append(frames.to_numpy(float) / depth)
    return np.concatenate(parts) if parts else np.zeros(0)


def _calibration_scale(model: DepthModel, calibration: Calibration) -> float:
    reference = float(model.depth_um(np.array([calibration.bead_brightness_ratio]))[0])
    return calibration.depth_um / reference


def count_seen(
    videos: Sequence[VideoAnalysis],
    model: DepthModel,
    calibration: Calibration | None = None,
    reference_frames_per_um: float | None = None,
    min_track_frames: int = 10,
) -> SeenCounts:
    """Count a capture's tracks without sizing them (replicate videos averaged).

    Each track counts its detections over its slab (:func:`track_frames_over_depth`), per
    analysed area and frame. With no track, what one track would stand for is needed for the
    bound: ``reference_frames_per_um`` (frames/µm, e.g. the mean over the tracks of the
    fluorescence capture a control is recorded beside), or else a track of
    ``min_track_frames`` frames in the thinnest slab (a particle just over the threshold), which
    makes the bound generous.
    """
    weights = track_frames_over_depth(videos, model, calibration)
    volume_ml = sum(v.area_um2 * 1e-12 * v.n_frames for v in videos)
    if not volume_ml > 0:
        raise AnalysisError("no analysed area or frames to count in")
    per_ml = float(weights.sum() / volume_ml)
    if weights.size:
        per_track = float(weights.mean())
    elif reference_frames_per_um is not None and reference_frames_per_um > 0:
        per_track = float(reference_frames_per_um)
    else:
        thinnest = float(model.depth_um(np.array([1.0]))[0])
        if calibration is not None:
            thinnest *= _calibration_scale(model, calibration)
        per_track = min_track_frames / thinnest
    return SeenCounts(int(weights.size), per_ml, per_track / volume_ml)


def sparse_analysis(
    paths: Sequence[str | Path],
    conditions: Conditions,
    settings: AnalysisSettings,
    calibration: Calibration | None,
    sample: str | None,
    dilution_factor: float | None,
    progress: Callable[[int], None] | None,
    reason: str,
) -> tuple[Measurement, list[VideoAnalysis]]:
    """The record of a fluorescence capture with too few tracks to size.

    Its concentration counts the tracks seen (:func:`count_seen` with the default depth model,
    or the calibration's depth), with a Poisson interval; its size distribution is empty; a
    warning says why.
    """
    from exocheck.nta.analyze import (
        _input_hashes,
        record_channel,
        record_source,
        recorded_inputs,
    )
    from exocheck.nta.fluorescence import DepthModel
    from exocheck.records import (
        Concentration,
        Interval,
        Measurement,
        Provenance,
        TrackSummary,
        VideoSummary,
    )

    videos = [seen_video(p, conditions, settings, progress) for p in paths]
    counts = count_seen(videos, DepthModel(), calibration, None, settings.min_track_frames)
    dilution = dilution_factor or 1.0
    low, high = counts.interval_per_ml()
    lengths = [v.tracks.groupby("particle")["frame"].size().to_numpy() for v in videos]
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0)
    first = videos[0]
    warning = (
        f"only {counts.n_tracks} track{'s' if counts.n_tracks != 1 else ''} of 3 frames or "
        f"more ({reason}): nothing is sized; the concentration counts the tracks seen, "
        f"{counts.per_ml * dilution:.3g}/mL, 95 % interval up to {high * dilution:.3g}/mL "
        "(Poisson)"
    )
    measurement = Measurement(
        source=record_source(videos),
        sample=sample or first.path.stem,
        temperature_c=conditions.temperature_c,
        viscosity_mpa_s=conditions.viscosity_mpa_s,
        dilution_factor=dilution_factor,
        concentration=Concentration(
            particles_per_ml=counts.per_ml * dilution,
            measured_per_ml=counts.per_ml,
            dilution_factor=dilution_factor,
            calibrated=calibration is not None,
            ci=Interval(low=low * dilution, high=high * dilution),
        ),
        tracks=TrackSummary(
            count=counts.n_tracks,
            mean_length_frames=float(all_lengths.mean()) if all_lengths.size else None,
        ),
        particles_per_frame=float(np.mean([v.particles_per_frame for v in videos])),
        per_video=[
            VideoSummary(
                name=v.path.name,
                concentration_per_ml=v.concentration_per_ml,
                particles_per_frame=v.particles_per_frame,
                tracks=int(n.size),
            )
            for v, n in zip(videos, lengths, strict=True)
        ],
        channel=record_channel("fluorescence", videos, conditions, settings),
        settings=recorded_inputs(videos, conditions, settings, calibration),
        diagnostics={
            "too_few_tracks_to_size": True,
            "tracks_seen": counts.n_tracks,
            "concentration_upper_per_ml": high * dilution,
            "bleach_half_life_s": None,
            "saturated_track_fraction": 0.0,
            "noise_sigma_counts": [v.noise_sigma for v in videos],
        },
        provenance=Provenance(inputs=_input_hashes(videos)),
        warnings=[warning],
    )
    if not math.isfinite(measurement.concentration.particles_per_ml or 0.0):
        raise AnalysisError("the tracks seen give no finite concentration")
    return measurement, videos
