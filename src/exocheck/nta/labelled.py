"""Labelled fraction: which share of the particles carries a fluorescent label, by size.

A labelled sample is recorded twice on one instrument: in scatter (every particle above the
scatter detection limit) and through a long-pass filter in fluorescence (labelled particles, free
label, and the scatter that leaks through the filter). The recordings are sequential, so no
particle is matched between them: each channel gives a concentration per size class, with its own
detection volume (:mod:`exocheck.nta.fluorescence`), and the labelled fraction of a class is the
ratio of the two. Controls recorded in fluorescence like the sample are subtracted, class by
class:

* an **unstained** sample shows what leaks through the filter (large particles above all);
* a **label-only** control (label in buffer) shows free label, dye micelles and antibody
  aggregates;
* a **detergent**-lysed stained sample shows whatever fluoresces without being a membrane
  vesicle, free label included; when given, it is subtracted instead of the label-only control.

Intervals come from bootstrap resamples of each recording's tracks, drawn by tiles of the field
(a particle's returns to the slab stay together; see :func:`exocheck.nta.fluorescence._tiles`),
independent between recordings; the fraction's 95 % interval is the percentile
interval of the resampled ratios.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from exocheck import __version__
from exocheck.errors import AnalysisError, ParameterError
from exocheck.nta import checks
from exocheck.nta.analyze import AnalysisSettings, Conditions, VideoAnalysis, analyze
from exocheck.nta.concentration import Calibration
from exocheck.nta.depth_profile import fit_profile, fitted_models
from exocheck.nta.fluorescence import (
    FLAT_TOP_ORDER,
    ChannelCounts,
    DepthModel,
    channel_counts,
    estimate_bleach_rate,
    significant_bleach_rate,
)
from exocheck.nta.sizing import SizeResult
from exocheck.nta.sparse import SeenCounts, count_seen, track_frames_over_depth
from exocheck.records import (
    Channel,
    Concentration,
    Interval,
    LabelledClass,
    LabelledFraction,
    Measurement,
    Provenance,
    Source,
    TrackSummary,
)

CLASS_EDGES_NM = np.array(
    [20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000], dtype=float
)
"""Size classes of the per-size fraction, nm (about two per octave)."""

MIN_FLUORESCENT_TRACKS = 100
"""Fewer fluorescent tracks than this gives a warning: the fraction rests on few particles."""

MAX_SATURATED_SHARE = 0.05
"""A larger share of fluorescent tracks reaching the camera's full scale gives a warning."""

STRONG_BLEACHING = 0.8
"""Bleaching is called strong when the median fluorescent particle's detection slab shrinks below
this share of its unbleached thickness."""

N_BOOTSTRAP = 400

OPTICS_TOLERANCE = 0.3
"""Default relative error of the stated optics (sheet width, defocus length) that the labelled
fraction's interval covers."""

ROLES = {
    "scatter": "--scatter",
    "fluorescence": "--fluorescence",
    "unstained": "--control-unstained",
    "label_only": "--control-label-only",
    "detergent": "--control-detergent",
}


@dataclass
class Recording:
    """One role's recordings, analysed: the measurement, its videos and its counts by class."""

    role: str
    paths: list[Path]
    measurement: Measurement | None
    videos: list[VideoAnalysis] = field(default_factory=list)
    size: SizeResult | None = None
    counts: ChannelCounts | None = None
    bleach_rate_per_s: float = 0.0
    seen: SeenCounts | None = None  # too few tracks to size: the tracks seen, counted

    @property
    def sparse(self) -> bool:
        """Whether the recording had too few tracks to size (counted, not sized)."""
        return self.size is None


def _settings_of(videos: Sequence[VideoAnalysis]) -> dict[str, float]:
    v = videos[0]
    return {"fps": v.fps, "pixel_size_um": v.pixel_size_um, "exposure_ms": v.exposure_ms}


def _differences(a: dict[str, float], b: dict[str, float]) -> list[str]:
    return [
        f"{k} {a[k]:g} vs {b[k]:g}"
        for k in a
        if k in b and not math.isclose(a[k], b[k], rel_tol=1e-3, abs_tol=1e-9)
    ]


def _analyse(
    role: str,
    paths: Sequence[Path],
    conditions: Conditions,
    settings: AnalysisSettings,
    progress: Callable[[int], None] | None,
) -> Recording:
    mode = "scatter" if role == "scatter" else "fluorescence"
    cond = conditions if mode == "scatter" else replace(conditions, refractive_index=None)
    # a fluorescence capture with too few tracks to size (a clean control above all) is a result:
    # its record counts the tracks seen, and it comes without a size (exocheck.nta.sparse)
    measurement, videos, size = analyze(
        list(paths), cond, replace(settings, mode=mode), progress=progress
    )
    return Recording(role, list(paths), measurement, videos, size)


def labelled_fraction(
    recordings: dict[str, Sequence[Path]],
    conditions: Conditions,
    settings: AnalysisSettings | None = None,
    model: DepthModel | None = None,
    calibrations: dict[str, Calibration] | None = None,
    marker: str | None = None,
    size_range_nm: tuple[float, float] | None = None,
    dilution_factor: float | None = None,
    bleach_half_life_s: float | None = None,
    sample: str | None = None,
    progress: Callable[[int], None] | None = None,
    optics_tolerance: float = OPTICS_TOLERANCE,
    measure_profile: bool = True,
) -> tuple[Measurement, dict[str, Recording]]:
    """Labelled concentration and fraction, overall and per size class, with 95 % intervals.

    ``recordings`` maps roles (``scatter``, ``fluorescence``, and optionally ``unstained``,
    ``label_only``, ``detergent``) to video files. ``calibrations`` may give a bead calibration
    for ``scatter`` and ``fluorescence`` (both or neither): with them, each channel's detection
    depth is absolute and the channels may be recorded with different settings; without them the
    channels must share frame rate, exposure and pixel size, and the shared axial profile
    ``model`` gives their detection depths. ``bleach_half_life_s`` (at the sheet's centre) is
    measured on the fluorescent tracks when not given. With ``measure_profile`` (the default) the
    axial profile is measured on the scatter tracks (:mod:`exocheck.nta.depth_profile`) and the
    intervals cover its bootstrap range; where it cannot be measured, or without
    ``measure_profile``, the stated optics (``model``) are used and may be off by
    ``optics_tolerance`` (relative, sheet width and defocus length): the intervals cover the
    fractions of every such misstatement's corners (0: the stated optics taken as exact).

    Raises
    ------
    ParameterError
        Missing roles, settings that differ between channels without calibrations, a control
        recorded unlike the fluorescence capture, a bad size range.
    AnalysisError
        No fluorescent tracks.
    """
    settings = settings or AnalysisSettings()
    model = model or DepthModel()
    calibrations = dict(calibrations or {})
    for role in ("scatter", "fluorescence"):
        if not recordings.get(role):
            raise ParameterError(f"{ROLES[role]}: at least one video is needed")
    unknown = sorted(set(recordings) - set(ROLES))
    if unknown:
        raise ParameterError(f"unknown recording role(s): {', '.join(unknown)}")
    if sorted(calibrations) not in ([], ["fluorescence", "scatter"]):
        raise ParameterError(
            "give a calibration for both channels (scatter and fluorescence) or for neither"
        )
    if size_range_nm is not None:
        low, high = size_range_nm
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
            raise ParameterError(f"--size-range-nm: need 0 < LOW < HIGH, got {low:g} {high:g}")
    if not (math.isfinite(optics_tolerance) and 0.0 <= optics_tolerance < 0.9):
        raise ParameterError(f"--optics-tolerance must be in [0, 0.9), got {optics_tolerance:g}")
    if bleach_half_life_s is not None and not (
        math.isfinite(bleach_half_life_s) and bleach_half_life_s > 0
    ):
        raise ParameterError(f"--bleach-half-life-s must be > 0, got {bleach_half_life_s:g}")

    done: dict[str, Recording] = {}
    for role in ROLES:
        paths = recordings.get(role)
        if paths:
            done[role] = _analyse(role, paths, conditions, settings, progress)
            _check_settings(done, role, bool(calibrations))

    for channel, calibration in calibrations.items():  # a calibration holds for its optics only
        for v in done[channel].videos:
            optics = {
                "pixel_size_um": v.pixel_size_um,
                "fps": v.fps,
                "exposure_ms": None if v.exposure_assumed else v.exposure_ms,
                "camera_gain": conditions.camera_gain,
                "wavelength_nm": conditions.wavelength_nm,
            }
            try:
                checks.calibration_optics(calibration, optics, None)
            except ParameterError as exc:
                raise ParameterError(f"--calibration-{channel}: {exc}") from None
    measurement = fraction_from_recordings(
        done,
        conditions,
        settings,
        model,
        calibrations,
        marker=marker,
        size_range_nm=size_range_nm,
        dilution_factor=dilution_factor,
        bleach_half_life_s=bleach_half_life_s,
        sample=sample,
        optics_tolerance=optics_tolerance,
        measure_profile=measure_profile,
    )
    return measurement, done


def fraction_from_recordings(
    done: dict[str, Recording],
    conditions: Conditions,
    settings: AnalysisSettings,
    model: DepthModel,
    calibrations: dict[str, Calibration],
    marker: str | None = None,
    size_range_nm: tuple[float, float] | None = None,
    dilution_factor: float | None = None,
    bleach_half_life_s: float | None = None,
    sample: str | None = None,
    optics_tolerance: float = OPTICS_TOLERANCE,
    measure_profile: bool = True,
) -> Measurement:
    """The labelled fraction of recordings already analysed (``labelled_fraction``'s second half).

    Only the counting depends on the depth model: the same analysed recordings can be counted
    with other stated optics, as the robustness benchmark does. Arguments as for
    :func:`labelled_fraction`.
    """
    scatter, fluorescence = done["scatter"], done["fluorescence"]
    assert scatter.measurement is not None and fluorescence.measurement is not None
    for role, rec in done.items():
        if role != "scatter" and not rec.sparse:
            if bleach_half_life_s is not None:
                rec.bleach_rate_per_s = math.log(2.0) / bleach_half_life_s
            else:
                rate, se = estimate_bleach_rate(rec.videos, model, settings.min_track_frames)
                rec.bleach_rate_per_s = significant_bleach_rate(rate, se)

    def counts_for(m: DepthModel) -> dict[str, ChannelCounts]:
        return {
            role: channel_counts(
                rec.videos,
                rec.size,
                CLASS_EDGES_NM,
                m,
                calibrations.get("scatter" if role == "scatter" else "fluorescence"),
                rec.bleach_rate_per_s,
                conditions.temperature_c,
                conditions.viscosity_mpa_s,
                n_bootstrap=N_BOOTSTRAP,
                seed=k,
                min_frames=settings.min_track_frames,
            )
            for k, (role, rec) in enumerate(done.items())
            if rec.size is not None
        }

    # the axial profile measured on the scatter tracks (no bleaching there) replaces the stated
    # optics; its bootstrap's range, or without a measurement ±optics_tolerance of the stated
    # optics, is what the interval covers
    fit = fit_profile(scatter.videos) if measure_profile else None
    stated = model
    if fit is not None:
        model, alternatives = fitted_models(fit, stated)
    else:
        alternatives = misstated_models(stated, optics_tolerance)
    if fit is not None or optics_tolerance > 0:
        # the sheet's shape is not measured: the interval covers a flat top as well
        alternatives = [*alternatives, *sheet_shape_models([model, *alternatives])]
    for role, counts in counts_for(model).items():
        done[role].counts = counts
    edges = _class_range(scatter, size_range_nm)
    dilution = dilution_factor or 1.0
    names = {role: [p.name for p in rec.paths] for role, rec in done.items()}
    cal_fl = calibrations.get("fluorescence")
    result, fluor_total, sparse_notes, seen = _evaluate(
        done, {r: rec.counts for r, rec in done.items()}, edges, model, cal_fl, settings, dilution,
        marker, names,
    )  # fmt: skip
    for role, counted in seen.items():
        done[role].seen = counted
    # the interval covers the answers of each corner of sheet width × defocus length
    envelope: dict[str, float] = {}
    for alt in alternatives:
        other, _, _, _ = _evaluate(
            done, dict(counts_for(alt)), edges, alt, cal_fl, settings, dilution, marker, names
        )
        shape = "" if alt.sheet_order == model.sheet_order else f", {alt.sheet_shape}"
        key = f"sheet {alt.sheet_fwhm_um:.3g} um, defocus {alt.depth_of_field_um:.3g} um{shape}"
        envelope[key] = other.fraction
        result = _widen(result, other)
    warnings = _warnings(done, fluorescence, model, conditions) + sparse_notes
    if measure_profile and fit is None:
        warnings.append(
            "the axial detection profile could not be measured on the scatter tracks (too few "
            f"long tracks): the stated optics are used, the interval covering ±{optics_tolerance:.0%} "
            "of them"
        )
    complete = scatter.counts.complete_from_nm if scatter.counts else None
    if complete is not None and edges[0] < complete:
        warnings.append(
            f"below about {complete:.0f} nm the scatter channel does not see every particle: "
            f"the labelled fraction from {edges[0]:g} nm up to there is overestimated"
        )
    f_meas = fluorescence.measurement
    # "role/file name" (the path where a role's files share a name): a certificate lists each
    # input with its role, and equal names in two roles stay apart
    inputs: dict[str, str] = {}
    for role, rec in done.items():
        names = [p.name for p in rec.paths]
        # a clean control has no analysis, but it is an input like the others
        shas = [v.sha256 for v in rec.videos] or [checks.sha256_input(p) for p in rec.paths]
        for path, sha in zip(rec.paths, shas, strict=True):
            inputs[f"{role}/{path.name if names.count(path.name) == 1 else path}"] = sha
    measurement = Measurement(
        source=Source(
            instrument="exocheck",
            software_version=__version__,
            file_sha256=f_meas.source.file_sha256,
            files=[p.name for rec in done.values() for p in rec.paths],
        ),
        sample=sample or f_meas.sample,
        temperature_c=conditions.temperature_c,
        viscosity_mpa_s=conditions.viscosity_mpa_s,
        dilution_factor=dilution_factor,
        size=f_meas.size,
        concentration=Concentration(
            particles_per_ml=result.labelled_per_ml,
            measured_per_ml=result.labelled_per_ml / dilution,
            dilution_factor=dilution_factor,
            calibrated=bool(calibrations),
            ci=result.labelled_ci,
        ),
        tracks=TrackSummary(
            count=f_meas.tracks.count, mean_length_frames=f_meas.tracks.mean_length_frames
        ),
        particles_per_frame=f_meas.particles_per_frame,
        per_video=f_meas.per_video,
        channel=Channel(
            mode="fluorescence",
            laser_wavelength_nm=conditions.wavelength_nm,
            settings=_settings_of(fluorescence.videos)
            | {"min_track_frames": settings.min_track_frames},
        ),
        labelled=result,
        settings={
            "conditions": f_meas.settings.get("conditions", {}),
            "analysis": f_meas.settings.get("analysis", {}),
            "depth_model": {
                "sheet_fwhm_um": model.sheet_fwhm_um,
                "depth_of_field_um": model.depth_of_field_um,
                "measured": fit is not None,
                "stated_sheet_fwhm_um": stated.sheet_fwhm_um,
                "stated_depth_of_field_um": stated.depth_of_field_um,
                "optics_tolerance": optics_tolerance,
            },
            "calibrations": {k: c.source_sha256 for k, c in calibrations.items()},
            "bleach_half_life_s": bleach_half_life_s,
            "per_role": {
                role: rec.measurement.settings.get("per_video", [])
                for role, rec in done.items()
                if rec.measurement is not None
            },
        },
        diagnostics={
            "bleach_half_life_s": {
                role: (math.log(2.0) / rec.bleach_rate_per_s if rec.bleach_rate_per_s else None)
                for role, rec in done.items()
                if role != "scatter" and rec.measurement is not None
            },
            # the rate at which fresh particles replace faded ones, fitted so that the
            # corrected count stays level over the capture; None without bleaching
            "fresh_supply_per_s": {
                role: _supply(rec.counts)
                for role, rec in done.items()
                if rec.counts is not None and role != "scatter"
            },
            "saturated_track_fraction": {
                role: rec.counts.saturated_fraction
                for role, rec in done.items()
                if rec.counts is not None and role != "scatter"
            },
            "tracks": {
                role: (rec.measurement.tracks.count if rec.measurement else 0)
                for role, rec in done.items()
            },
            "fluorescent_per_ml_before_controls": float(fluor_total * dilution),
            "fraction_at_profile_corners": envelope,
            "too_few_tracks_to_size": {
                role: rec.seen.n_tracks for role, rec in done.items() if rec.seen is not None
            },
            "scatter_detection_limit_nm": scatter.measurement.diagnostics.get("detection_limit_nm"),
        },
        provenance=Provenance(inputs=inputs),
        warnings=warnings,
    )
    return measurement


def _supply(counts: ChannelCounts) -> dict[str, float] | None:
    """A channel's fitted fresh supply, 1/s, with its 95 % bootstrap range (None: not fitted)."""
    if counts.fresh_supply_per_s is None:
        return None
    value, low, high = counts.fresh_supply_per_s
    return {"value": value, "ci_low": low, "ci_high": high}


def _check_settings(done: dict[str, Recording], role: str, calibrated: bool) -> None:
    rec = done[role]
    if not rec.videos:
        return
    mine = _settings_of(rec.videos)
    for v in rec.videos[1:]:
        diff = _differences(mine, _settings_of([v]))
        if diff:
            raise ParameterError(
                f"{ROLES[role]}: the videos were recorded with different settings "
                f"({'; '.join(diff)})"
            )
    if role == "fluorescence" and "scatter" in done and not calibrated:
        diff = _differences(_settings_of(done["scatter"].videos), mine)
        if diff:
            raise ParameterError(
                f"the scatter and fluorescence captures were recorded with different settings "
                f"({'; '.join(diff)}) and no calibration was given: their detection volumes "
                "differ; pass --calibration-scatter and --calibration-fluorescence"
            )
    if role in ("unstained", "label_only", "detergent") and done["fluorescence"].videos:
        diff = _differences(_settings_of(done["fluorescence"].videos), mine)
        if diff:
            raise ParameterError(
                f"{ROLES[role]}: recorded with other settings than the fluorescence capture "
                f"({'; '.join(diff)}): a control is recorded as the sample is"
            )


def _class_range(scatter: Recording, size_range_nm: tuple[float, float] | None) -> np.ndarray:
    """Class edges of the reported range: given, or where the scatter channel sees particles."""
    counts = scatter.counts
    assert counts is not None and scatter.measurement is not None
    if size_range_nm is not None:
        low, high = size_range_nm
    else:
        limit = scatter.measurement.diagnostics.get("detection_limit_nm")
        assert scatter.size is not None
        d = np.asarray(scatter.size.track_diameter_nm, float)
        d = d[np.isfinite(d) & (d > 0)]
        if d.size == 0:
            raise AnalysisError("--scatter: no sized tracks")
        complete = counts.complete_from_nm or 0.0
        low = max(float(limit) if limit else 0.0, float(np.percentile(d, 2)), complete)
        high = float(np.percentile(d, 99))
        # inwards to a class edge at the low end (below it scatter counts are incomplete),
        # outwards at the high end
        low = float(
            CLASS_EDGES_NM[min(np.searchsorted(CLASS_EDGES_NM, low), CLASS_EDGES_NM.size - 2)]
        )
        high = float(
            CLASS_EDGES_NM[min(np.searchsorted(CLASS_EDGES_NM, high), CLASS_EDGES_NM.size - 1)]
        )
    inner = CLASS_EDGES_NM[(CLASS_EDGES_NM > low) & (CLASS_EDGES_NM < high)]
    return np.concatenate([[low], inner, [high]])


SPARSE_SEED = 7
"""Seed of the resamples of the counts of captures with too few tracks to size."""


def _count_sparse(
    done: dict[str, Recording],
    per_role: dict[str, tuple[np.ndarray, np.ndarray]],
    edges: np.ndarray,
    model: DepthModel,
    calibration: Calibration | None,
    min_frames: int,
) -> tuple[list[str], dict[str, SeenCounts]]:
    """Count the recordings with too few tracks to size; a control's count goes into ``per_role``.

    A control's count is spread over the range's classes as the fluorescent particles are (with
    nothing sized in fluorescence, by class width): all of it is subtracted within the range,
    which errs on the side of a lower fraction. With no track at all, the bound is that of
    tracks like the fluorescence capture's (:func:`exocheck.nta.sparse.count_seen`). Returns a
    warning per such control, and the counts by role.
    """
    fluorescence = done["fluorescence"]
    per_track = track_frames_over_depth(fluorescence.videos, model, calibration)
    reference = float(per_track.mean()) if per_track.size else None
    fluor = per_role.get("fluorescence")
    if fluor is not None and fluor[0].sum() > 0:
        share = np.clip(fluor[0], 0.0, None) / np.clip(fluor[0], 0.0, None).sum()
    else:
        share = np.diff(np.log(edges)) / math.log(edges[-1] / edges[0])
    rng = np.random.default_rng(SPARSE_SEED)
    notes: list[str] = []
    seen: dict[str, SeenCounts] = {}
    for role, rec in done.items():
        if not rec.sparse:
            continue
        own = None if role == "fluorescence" else reference
        counted = seen[role] = count_seen(rec.videos, model, calibration, own, min_frames)
        if role == "fluorescence":
            continue
        per_role[role] = (
            counted.per_ml * share,
            counted.resample(rng, N_BOOTSTRAP)[:, None] * share,
        )
        _, high = counted.interval_per_ml()
        n = counted.n_tracks
        notes.append(
            f"{ROLES[role]}: {n} track{'' if n == 1 else 's'}, too few to size: counted as "
            f"{counted.per_ml:.3g}/mL in the cell (95 % interval up to {high:.3g}/mL, Poisson) "
            f"and subtracted within {edges[0]:g}-{edges[-1]:g} nm"
        )
    return notes, seen


def _evaluate(
    done: dict[str, Recording],
    counts: dict[str, ChannelCounts | None],
    edges: np.ndarray,
    model: DepthModel,
    calibration: Calibration | None,
    settings: AnalysisSettings,
    dilution: float,
    marker: str | None,
    names: dict[str, list[str]],
) -> tuple[LabelledFraction, float, list[str], dict[str, SeenCounts]]:
    """The labelled fraction for one depth model: controls subtracted, classes divided.

    Returns the result, the fluorescent concentration before the controls (in the cell), the
    warnings for controls with too few tracks to size, and those recordings' counts.
    """
    per_role = {
        role: _on_edges(counts.get(role), edges) for role, rec in done.items() if not rec.sparse
    }
    notes, seen = _count_sparse(
        done, per_role, edges, model, calibration, settings.min_track_frames
    )
    if "fluorescence" in seen:  # too few fluorescent tracks to size: counted
        result = _sparse_fraction(edges, per_role, seen["fluorescence"], dilution, marker, names)
        return result, seen["fluorescence"].per_ml, notes, seen
    result = _subtract_and_divide(
        edges,
        per_role,
        _tracks_on_edges(counts.get("fluorescence"), edges),
        dilution,
        marker,
        names,
    )
    return result, float(per_role["fluorescence"][0].sum()), notes, seen


def misstated_models(model: DepthModel, tolerance: float) -> list[DepthModel]:
    """The depth models whose optics the stated ones would misstate by ±``tolerance``.

    If the stated sheet width is 30 % over the true one, the true one is the stated ÷ 1.3; each
    corner of (sheet width, defocus length) ∈ stated ÷ (1 ± tolerance) is returned. None for a
    tolerance of 0.
    """
    if tolerance <= 0:
        return []
    factors = (1.0 / (1.0 + tolerance), 1.0 / (1.0 - tolerance))
    return [
        replace(
            model,
            sheet_fwhm_um=model.sheet_fwhm_um * a,
            depth_of_field_um=model.depth_of_field_um * b,
        )
        for a in factors
        for b in factors
    ]


def sheet_shape_models(models: Sequence[DepthModel]) -> list[DepthModel]:
    """The same profiles with a flat-top sheet (:data:`~exocheck.nta.fluorescence.FLAT_TOP_ORDER`).

    The tracks do not show the sheet's shape: a flat top's steep edge is crossed within a frame
    or two, where the peak's change is no longer linear in the step along z, and the profile
    fitted with a flat top to the measured slopes goes far off (docs/fluorescence.md). A flat-top
    sheet fitted as the nearest Gaussian moves the fraction (on simulated captures by up to a
    tenth), so the interval covers the fractions of each profile with a flat top of the same
    sheet width and defocus length.

    Parameters
    ----------
    models : sequence of DepthModel
        The profiles counted (the point's and the corners of its range).

    Returns
    -------
    list of DepthModel
        Each with a flat-top sheet; none for those that are flat-topped already.
    """
    return [replace(m, sheet_order=FLAT_TOP_ORDER) for m in models if m.sheet_order == 1]


def _widen(result: LabelledFraction, other: LabelledFraction) -> LabelledFraction:
    """``result`` with its intervals (overall and per class) stretched to cover ``other``'s."""

    def cover(a: Interval | None, b: Interval | None) -> Interval | None:
        if a is None or b is None:
            return a
        return Interval(low=min(a.low, b.low), high=max(a.high, b.high))

    classes = [
        c.model_copy(update={"ci": cover(c.ci, o.ci)})
        for c, o in zip(result.classes, other.classes, strict=True)
    ]
    return result.model_copy(
        update={
            "ci": cover(result.ci, other.ci),
            "labelled_ci": cover(result.labelled_ci, other.labelled_ci),
            "classes": classes,
        }
    )


def _sparse_fraction(
    edges: np.ndarray,
    per_role: dict[str, tuple[np.ndarray, np.ndarray]],
    seen: SeenCounts,
    scale: float,
    marker: str | None,
    inputs: dict[str, list[str]],
) -> LabelledFraction:
    """The labelled fraction when the fluorescence capture has too few tracks to size.

    Its tracks are counted (all of them in the range: an upper bound on what lies there) and the
    controls subtracted; the interval runs from the count's lower Poisson bound less the
    controls to its upper bound, each over the scatter total's resampled extremes. With no
    fluorescent track, the fraction is 0 with an upper bound.
    """
    total, total_b = per_role["scatter"]
    control = 0.0
    subtracted: dict[str, float] = {}
    for role in ("unstained", "detergent" if "detergent" in per_role else "label_only"):
        if role in per_role:
            control += float(per_role[role][0].sum())
            subtracted[role] = float(per_role[role][0].sum() * scale)
    all_total = float(total.sum())
    if not all_total > 0:
        raise AnalysisError(
            f"no scatter-channel particles between {edges[0]:g} and {edges[-1]:g} nm"
        )
    t_low, t_high = np.percentile(total_b.sum(axis=1), [2.5, 97.5])
    f_low, f_high = seen.interval_per_ml()
    labelled = max(seen.per_ml - control, 0.0)
    lab_low, lab_high = max(f_low - control, 0.0), f_high
    classes = [
        LabelledClass(
            low_nm=float(edges[i]),
            high_nm=float(edges[i + 1]),
            total_per_ml=float(total[i] * scale),
            labelled_per_ml=0.0,
            fraction=None,
            ci=None,
            fluorescent_tracks=0.0,
        )
        for i in range(edges.size - 1)
    ]
    return LabelledFraction(
        marker=marker,
        low_nm=float(edges[0]),
        high_nm=float(edges[-1]),
        fraction=float(min(labelled / all_total, 1.0)),
        ci=Interval(
            low=float(min(lab_low / max(t_high, all_total), 1.0)),
            high=float(min(lab_high / max(min(t_low, all_total), 1e-300), 1.0)),
        ),
        labelled_per_ml=labelled * scale,
        labelled_ci=Interval(low=lab_low * scale, high=lab_high * scale),
        total_per_ml=all_total * scale,
        classes=classes,
        subtracted_per_ml=subtracted,
        inputs=inputs,
    )


def _on_edges(counts: ChannelCounts | None, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A channel's class concentrations re-binned on ``edges`` (shares by log-width overlap)."""
    if counts is None:
        return np.zeros(edges.size - 1), np.zeros((N_BOOTSTRAP, edges.size - 1))
    weights = _overlap(counts.edges_nm, edges)
    return counts.per_ml @ weights, counts.resampled @ weights


def _tracks_on_edges(counts: ChannelCounts | None, edges: np.ndarray) -> np.ndarray:
    if counts is None:
        return np.zeros(edges.size - 1)
    return counts.tracks @ _overlap(counts.edges_nm, edges)


def _overlap(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Share of each source class (rows) falling in each target class (columns), by log width."""
    ls, lt = np.log(source), np.log(target)
    lo = np.maximum(ls[:-1, None], lt[None, :-1])
    hi = np.minimum(ls[1:, None], lt[None, 1:])
    return np.clip(hi - lo, 0.0, None) / np.diff(ls)[:, None]


def _ratio(
    labelled: float, total: float, labelled_b: np.ndarray, total_b: np.ndarray
) -> tuple[float | None, Interval | None]:
    """Point estimate and 95 % percentile interval of labelled / total, clipped to [0, 1]."""
    if not total > 0:
        return None, None
    ok = total_b > 0
    point = float(np.clip(labelled / total, 0.0, 1.0))
    if ok.sum() < 10:
        return point, None
    lo, hi = np.percentile(np.clip(labelled_b[ok] / total_b[ok], 0.0, 1.0), [2.5, 97.5])
    return point, Interval(low=float(lo), high=float(hi))


def _warnings(
    done: dict[str, Recording],
    fluorescence: Recording,
    model: DepthModel,
    conditions: Conditions,
) -> list[str]:
    out: list[str] = []
    for role, rec in done.items():
        if role == "scatter" or rec.counts is None:
            continue
        share = rec.counts.saturated_fraction
        if share > MAX_SATURATED_SHARE:
            out.append(
                f"{ROLES[role]}: {share:.0%} of the tracks saturate the camera: their "
                "brightness, and so their detection depth, is underestimated; lower the camera "
                "level"
            )
    rate = fluorescence.bleach_rate_per_s
    counts = fluorescence.counts
    if rate > 0 and counts is not None and counts.fading_correction > 1.0 / STRONG_BLEACHING:
        supply = counts.fresh_supply_per_s
        fitted = (
            f"; fresh particles arrive at {supply[0]:.2g}/s (95 %: {supply[1]:.2g}-{supply[2]:.2g}),"
            " fitted so that the corrected count stays level over the capture"
            if supply
            else ""
        )
        out.append(
            f"strong photobleaching (half-life {math.log(2) / rate:.2g} s at the sheet's "
            f"centre): the fluorescent count is multiplied by {counts.fading_correction:.2g} for "
            f"particles that faded{fitted}; the correction assumes the light reached the sample "
            "as the capture started, and on simulated captures with a 1 s half-life it left "
            "the fraction 1.3-1.8 times the truth (docs/fluorescence.md): lower the laser power, "
            "use flow, or shorten the capture"
        )
    n_fl = fluorescence.measurement.tracks.count if fluorescence.measurement else 0
    return _missing_warnings(n_fl, set(done), first=out)


def _missing_warnings(
    n_fluorescent: int, roles: set[str], first: list[str] | None = None
) -> list[str]:
    """Warnings for few fluorescent tracks and for the controls not given (after ``first``)."""
    out: list[str] = []
    if n_fluorescent < MIN_FLUORESCENT_TRACKS:
        out.append(
            f"only {n_fluorescent} fluorescent tracks (fewer than {MIN_FLUORESCENT_TRACKS}): the "
            "labelled fraction rests on few particles"
        )
    out += first or []
    if "unstained" not in roles:
        out.append(
            "no unstained control: scatter leaking through the filter (large particles above "
            "all) is counted as label"
        )
    if "label_only" not in roles and "detergent" not in roles:
        out.append(
            "no label-only or detergent control: free label, dye micelles and antibody "
            "aggregates are counted as labelled vesicles"
        )
    return out


def _subtract_and_divide(
    edges: np.ndarray,
    per_role: dict[str, tuple[np.ndarray, np.ndarray]],
    fluorescent_tracks: np.ndarray,
    scale: float,
    marker: str | None,
    inputs: dict[str, list[str]],
) -> LabelledFraction:
    """Controls subtracted class by class, then the labelled fractions and their intervals.

    ``per_role`` holds each role's concentration per class and its bootstrap resamples (in the
    measurement cell; ``scale`` turns them into the original sample's). The unstained control is
    subtracted, and the detergent control or, without one, the label-only control.
    """
    total, total_b = per_role["scatter"]
    labelled, labelled_b = per_role["fluorescence"]
    subtracted: dict[str, float] = {}
    for role in ("unstained", "detergent" if "detergent" in per_role else "label_only"):
        if role in per_role:
            c, c_b = per_role[role]
            labelled, labelled_b = labelled - c, labelled_b - c_b
            subtracted[role] = float(c.sum() * scale)
    classes = []
    for i in range(edges.size - 1):
        frac, ci = _ratio(labelled[i], total[i], labelled_b[:, i], total_b[:, i])
        classes.append(
            LabelledClass(
                low_nm=float(edges[i]),
                high_nm=float(edges[i + 1]),
                total_per_ml=float(total[i] * scale),
                labelled_per_ml=float(max(labelled[i], 0.0) * scale),
                fraction=frac,
                ci=ci,
                fluorescent_tracks=float(fluorescent_tracks[i]),
            )
        )
    frac, ci = _ratio(labelled.sum(), total.sum(), labelled_b.sum(axis=1), total_b.sum(axis=1))
    if frac is None or ci is None:
        raise AnalysisError(
            f"no scatter-channel particles between {edges[0]:g} and {edges[-1]:g} nm"
        )
    lab_lo, lab_hi = np.percentile(np.maximum(labelled_b.sum(axis=1), 0.0), [2.5, 97.5])
    return LabelledFraction(
        marker=marker,
        low_nm=float(edges[0]),
        high_nm=float(edges[-1]),
        fraction=frac,
        ci=ci,
        labelled_per_ml=float(max(labelled.sum(), 0.0) * scale),
        labelled_ci=Interval(low=float(lab_lo * scale), high=float(lab_hi * scale)),
        total_per_ml=float(total.sum() * scale),
        classes=classes,
        subtracted_per_ml=subtracted,
        inputs=inputs,
    )


COMPARED_SETTINGS = (
    "sensitivity",
    "shutter",
    "gain",
    "fps",
    "cycles",
    "min_trace_length",
    "min_track_frames",
    "min_brightness",
    "max_brightness",
    "min_area",
    "max_area",
    "camera_level",
    "detection_threshold",
    "exposure_ms",
    "pixel_size_um",
)
"""Channel settings that change how many particles a channel counts (or how deep it sees)."""


def labelled_fraction_from_records(
    records: dict[str, Sequence[Measurement]],
    marker: str | None = None,
    size_range_nm: tuple[float, float] | None = None,
    sample: str | None = None,
    n_bootstrap: int = N_BOOTSTRAP,
) -> Measurement:
    """Labelled fraction from measurement records (instrument exports or exocheck results).

    Each role's concentration per size class is its records' concentration (per mL of the
    original sample) spread over their size distributions, averaged over the role's records.
    The vendor's ratio of fluorescent to scatter concentration assumes the same detection volume
    in both channels; it holds only when the channels were recorded with the same settings, so
    records whose stated settings differ are refused. Intervals are parametric bootstrap
    intervals: the tracks of each class Poisson-distributed.

    Raises
    ------
    ParameterError
        A role recorded in the other mode, settings that differ between channels, records without
        a size distribution or concentration, a bad size range.
    AnalysisError
        No fluorescent tracks.
    """
    for role in ("scatter", "fluorescence"):
        if not records.get(role):
            raise ParameterError(f"{ROLES[role]}: at least one record is needed")
    warnings: list[str] = []
    for role, group in records.items():
        expected = "scatter" if role == "scatter" else "fluorescence"
        for m in group:
            name = m.source.files[0] if m.source.files else (m.sample or "record")
            if m.labelled is not None:
                raise ParameterError(f"{ROLES[role]} {name}: is itself a labelled-fraction result")
            if m.channel is None:
                warnings.append(f"{ROLES[role]} {name}: the export does not state its channel")
            elif m.channel.mode != expected:
                raise ParameterError(
                    f"{ROLES[role]} {name}: recorded in {m.channel.mode} mode, not {expected}"
                )
            if not m.size.density or not m.concentration.particles_per_ml:
                if role == "fluorescence" and not (m.tracks.count or 0):
                    raise AnalysisError(f"{ROLES[role]} {name}: no fluorescent tracks")
                if role in ("scatter", "fluorescence"):
                    raise ParameterError(
                        f"{ROLES[role]} {name}: no size distribution or concentration to divide"
                    )
    reference = _record_settings(records["fluorescence"][0])
    for role, group in records.items():
        for m in group:
            diff = _differences(_record_settings(m), reference)
            if diff:
                name = m.source.files[0] if m.source.files else (m.sample or "record")
                raise ParameterError(
                    f"{ROLES[role]} {name}: recorded with other settings than the fluorescence "
                    f"capture ({'; '.join(diff)}) and no calibration can relate them: the "
                    "channels' detection volumes differ; record both channels with the same "
                    "settings, or analyse the videos with exocheck"
                )
    if size_range_nm is not None:
        low, high = size_range_nm
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
            raise ParameterError(f"--size-range-nm: need 0 < LOW < HIGH, got {low:g} {high:g}")
    else:
        low, high = _records_range(records["scatter"])
    inner = CLASS_EDGES_NM[(CLASS_EDGES_NM > low) & (CLASS_EDGES_NM < high)]
    edges = np.concatenate([[low], inner, [high]])
    rng = np.random.default_rng(0)
    per_role: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for role, group in records.items():
        per_role[role] = _record_classes(group, edges, rng, n_bootstrap)
    result = _subtract_and_divide(
        edges,
        {role: (c, c_b) for role, (c, c_b, _) in per_role.items()},
        per_role["fluorescence"][2],
        1.0,
        marker,
        {role: [f for m in group for f in m.source.files] for role, group in records.items()},
    )
    n_fl = int(sum(m.tracks.count or 0 for m in records["fluorescence"]))
    warnings += _missing_warnings(n_fl, set(records))
    first = records["fluorescence"][0]
    inputs = {
        f"{role}/{name}": sha
        for role, group in records.items()
        for m in group
        for name, sha in m.provenance.inputs.items()
    }
    return Measurement(
        source=Source(
            instrument=first.source.instrument,
            software_version=first.source.software_version,
            file_sha256=first.source.file_sha256,
            files=[f for group in records.values() for m in group for f in m.source.files],
        ),
        sample=sample or first.sample,
        date=first.date,
        temperature_c=first.temperature_c,
        dilution_factor=first.dilution_factor,
        size=first.size,
        concentration=Concentration(particles_per_ml=result.labelled_per_ml, ci=result.labelled_ci),
        tracks=TrackSummary(count=n_fl),
        channel=first.channel,
        labelled=result,
        settings={"fluorescence": reference, "source": "instrument records"},
        diagnostics={
            "fluorescent_per_ml_before_controls": float(per_role["fluorescence"][0].sum())
        },
        provenance=Provenance(inputs=inputs),
        warnings=warnings,
    )


def _record_settings(m: Measurement) -> dict[str, float]:
    stated = m.channel.settings if m.channel is not None else {}
    out = {}
    for key in COMPARED_SETTINGS:
        value = stated.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def _records_range(group: Sequence[Measurement]) -> tuple[float, float]:
    """Where the scatter records hold particles: their D5 to D99, snapped to class edges."""
    lows, highs = [], []
    for m in group:
        edges = np.asarray(m.size.bin_edges_nm, float)
        cum = np.cumsum(m.size.density)
        if edges.size < 2 or cum[-1] <= 0:
            continue
        lows.append(float(edges[1:][np.searchsorted(cum / cum[-1], 0.05)]))
        highs.append(float(edges[1:][min(np.searchsorted(cum / cum[-1], 0.99), cum.size - 1)]))
    if not lows:
        raise ParameterError("--scatter: no size distribution in the records")
    low = float(
        CLASS_EDGES_NM[min(np.searchsorted(CLASS_EDGES_NM, max(lows)), CLASS_EDGES_NM.size - 2)]
    )
    high = float(
        CLASS_EDGES_NM[min(np.searchsorted(CLASS_EDGES_NM, min(highs)), CLASS_EDGES_NM.size - 1)]
    )
    return low, max(high, float(CLASS_EDGES_NM[np.searchsorted(CLASS_EDGES_NM, low) + 1]))


def _record_classes(
    group: Sequence[Measurement], edges: np.ndarray, rng: np.random.Generator, n_bootstrap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean concentration per class over records, its Poisson resamples, and tracks per class."""
    per_ml = np.zeros(edges.size - 1)
    resampled = np.zeros((n_bootstrap, edges.size - 1))
    tracks = np.zeros(edges.size - 1)
    for m in group:
        if not m.size.density or not m.concentration.particles_per_ml:
            continue  # a clean control: nothing to subtract
        share = np.asarray(m.size.density) @ _overlap_linear(
            np.asarray(m.size.bin_edges_nm, float), edges
        )
        n = max(float(m.tracks.count or 0), 1.0) * share
        conc = m.concentration.particles_per_ml * share
        draws = rng.poisson(np.broadcast_to(n, (n_bootstrap, n.size)))
        per_ml += conc
        resampled += np.where(n > 0, conc * draws / np.where(n > 0, n, 1.0), 0.0)
        tracks += n
    return per_ml / len(group), resampled / len(group), tracks


def _overlap_linear(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Share of each source bin (rows) in each target class (columns), by linear width."""
    lo = np.maximum(source[:-1, None], target[None, :-1])
    hi = np.minimum(source[1:, None], target[None, 1:])
    width = np.maximum(np.diff(source), 1e-12)[:, None]
    return np.clip(hi - lo, 0.0, None) / width
