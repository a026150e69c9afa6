"""Fluorescence NTA: detection volumes, photobleaching and per-size concentrations of a channel.

A particle is detected while its peak over the detection threshold stays above 1. Its in-focus
brightness over threshold ``r`` and the optics' axial profile ``p(z)`` set how deep it is seen:
the detection slab is ``{z : r · s(z) · p(z) ≥ 1}``, where ``s(z)`` is the share of its
fluorophores still lit (1 in scatter). The profile is the light sheet's Gaussian (full width
``sheet_fwhm_um``) times the peak loss of a defocused spot, ``1 / (1 + (z / z_R)²)`` with
``z_R = depth_of_field_um``. Only the profile's shape matters when two channels of the same
instrument are compared: its scale cancels in their ratio.

**Bleaching.** Each fluorophore bleaches at rate ``k · I(z)`` in the sheet's light ``I(z)``.
Slow (large) particles linger and fade more; a fluorescent track that ends because its particle
faded is not a particle leaving the slab, and counting it as one would under-count the labelled
particles. Here every track counts with the inverse of the slab in which particles of its size
and fresh brightness are seen at the time it was seen, read off Brownian paths along z that
start unbleached as the capture starts (:func:`fading_table`). How fast fresh particles replace
faded ones is not assumed: it is fitted so that the corrected count stays level over the capture
(:func:`stationary_position`), and its uncertainty is carried into the bootstrap.

The bleaching rate ``k`` is measured on the tracks themselves: Brownian motion is reversible, so
without bleaching a track's brightness rises as often as it falls (a track starts and ends at the
threshold); bleaching makes brightness fall along tracks on average, at ``k`` times the mean light
the particle is in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from exocheck.errors import ParameterError

if TYPE_CHECKING:
    from exocheck.nta.analyze import VideoAnalysis
    from exocheck.nta.concentration import Calibration
    from exocheck.nta.sizing import SizeResult

SHEET_FWHM_UM = 8.0
"""Default full width at half maximum of the light sheet, µm (NanoSight/ZetaView-class cells are
illuminated by a sheet 5-20 µm thick)."""

DEPTH_OF_FIELD_UM = 3.0
"""Default defocus length z_R, µm: a 20× / NA 0.4 objective's spot doubles its area ~3 µm out of
focus."""

_GRID_POINTS = 801

FLAT_TOP_ORDER = 4
"""Order of the super-Gaussian that stands for a flat-top sheet, ``exp(-ln 2 · (2z / FWHM)^8)``:
the usual description of a flat-top (top-hat) laser beam, flat to within 10 % over about 80 % of
its full width at half maximum. The sheet's shape cannot be read off the tracks (see
:mod:`exocheck.nta.depth_profile`): the labelled fraction's interval covers the profile fitted
with either shape."""


@dataclass(frozen=True)
class DepthModel:
    """The axial detection profile shared by the channels of one instrument.

    ``sheet_order`` sets the sheet's shape: its light is ``exp(-ln 2 · (2z / FWHM)^(2·order))``,
    a Gaussian for 1 (the default), a flat top for :data:`FLAT_TOP_ORDER`.
    """

    sheet_fwhm_um: float = SHEET_FWHM_UM
    depth_of_field_um: float = DEPTH_OF_FIELD_UM
    sheet_order: int = 1

    def __post_init__(self) -> None:
        for name in ("sheet_fwhm_um", "depth_of_field_um"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ParameterError(f"{name} must be a finite number > 0, got {value}")
        if not (isinstance(self.sheet_order, int) and self.sheet_order >= 1):
            raise ParameterError(f"sheet_order must be an integer ≥ 1, got {self.sheet_order}")

    @property
    def sheet_shape(self) -> str:
        """``gaussian``, ``flat-top`` (order :data:`FLAT_TOP_ORDER`) or ``super-gaussian-N``."""
        if self.sheet_order == 1:
            return "gaussian"
        if self.sheet_order == FLAT_TOP_ORDER:
            return "flat-top"
        return f"super-gaussian-{self.sheet_order}"

    @property
    def z_um(self) -> np.ndarray:
        """Axial grid, µm: ±3 sheet widths, where the light has fallen below 10⁻¹⁰."""
        return np.linspace(-3 * self.sheet_fwhm_um, 3 * self.sheet_fwhm_um, _GRID_POINTS)

    def light(self, z_um: np.ndarray) -> np.ndarray:
        """Relative illumination of the sheet at ``z_um``."""
        x = (2.0 * np.asarray(z_um) / self.sheet_fwhm_um) ** 2
        return np.exp(-math.log(2.0) * (x if self.sheet_order == 1 else x**self.sheet_order))

    def profile(self, z_um: np.ndarray) -> np.ndarray:
        """Relative peak of a particle's spot at ``z_um`` (light × defocus)."""
        z = np.asarray(z_um)
        return self.light(z) / (1.0 + (z / self.depth_of_field_um) ** 2)

    def depth_um(self, ratio: np.ndarray, lit: np.ndarray | None = None) -> np.ndarray:
        """Thickness of the slab in which particles of in-focus peak/threshold ``ratio`` are seen.

        ``lit`` is the lit share ``s(z)`` on :attr:`z_um` per particle (rows), or None (no
        bleaching). Ratios are floored at 1.5, as in
        :func:`exocheck.nta.concentration.relative_depth`: a particle barely above threshold in
        focus would otherwise get an unbounded weight.
        """
        z = self.z_um
        step = float(z[1] - z[0])
        r = np.clip(np.asarray(ratio, float), 1.5, None)
        shape = self.profile(z)[None, :] * (1.0 if lit is None else lit)
        return np.maximum(np.sum(r[:, None] * shape >= 1.0, axis=1), 1) * step


FOCUS_SHARE = 0.2
"""Share of a capture's frames, the most sharply focused, on which the bleaching rate is read."""

SHAPE_TOLERANCE = 0.05
"""Largest difference of ln(peak / photons) between the two frames of a pair: a spot's shape
(its peak over its photons) sets its distance from focus, and so the light it is in."""

MAX_PAIR_LAG_S = 0.5
"""Longest time between the two frames of a pair, s: a 110 nm vesicle moves about 2 µm along z
in 0.5 s, about a defocus length, so the light between the frames stays that at focus; over
longer lags the pairs come from the particles that happened to stay in dimmer light (those in
the bright centre have faded), and the rate is under-stated."""


def estimate_bleach_rate(
    videos: Sequence[VideoAnalysis], model: DepthModel | None = None, min_frames: int = 10
) -> tuple[float, float]:
    """Bleaching rate at the sheet's centre, 1/s, and its standard error, from the tracks.

    Pairs of frames of one track in which the spot has the same shape (peak over photons, within
    :data:`SHAPE_TOLERANCE` in log) are at the same distance from focus, so in the same light
    and equally defocused: the ratio of their photons (a spot's mass) is the share of its
    fluorophores that survived between them, whatever the particle's path. Only the most
    sharply focused frames (the top :data:`FOCUS_SHARE` of the capture's shapes), at the sheet's
    centre, and pairs at most :data:`MAX_PAIR_LAG_S` apart are used: there the light between the
    frames is the centre's, so the pooled slope of log photons against time is ``-k`` without a
    model of the sheet. Tracks that end because their particle faded contribute their pairs like
    the others: nothing is conditioned on how a track ends (the pooled within-track slope, used
    before, read 55-65 % of the rate because fading tracks end in the bright centre).

    ``model`` and ``min_frames`` are accepted for compatibility; neither is needed. The standard
    error is that of the pooled slope over tracks (pairs of one track are not independent).
    """
    del model, min_frames
    parts = []
    for v in videos:
        t = v.tracks
        if t.empty or "mass" not in t or "signal" not in t:
            continue
        t = t[(t["mass"] > 0) & (t["signal"] > 0)]
        shape = np.log(t["signal"].to_numpy(float)) - np.log(t["mass"].to_numpy(float))
        parts.append((v, t, shape))
    if not parts:
        return 0.0, math.inf
    cut = float(np.quantile(np.concatenate([p[2] for p in parts]), 1.0 - FOCUS_SHARE))
    sxx, sxy = [], []
    for v, t, shape in parts:
        keep = shape >= cut
        sel = t[keep]
        q = shape[keep]
        time_s = sel["frame"].to_numpy(float) / v.fps
        log_m = np.log(sel["mass"].to_numpy(float))
        group = sel["particle"].to_numpy()
        order = np.argsort(group, kind="stable")
        group, q, time_s, log_m = group[order], q[order], time_s[order], log_m[order]
        bounds = np.flatnonzero(np.diff(group)) + 1
        for idx in np.split(np.arange(group.size), bounds):
            if idx.size < 2:
                continue
            i, j = np.triu_indices(idx.size, 1)
            dt = time_s[idx][j] - time_s[idx][i]
            ok = (np.abs(q[idx][i] - q[idx][j]) < SHAPE_TOLERANCE) & (np.abs(dt) <= MAX_PAIR_LAG_S)
            if not ok.any():
                continue
            dt = dt[ok]
            dy = log_m[idx][j][ok] - log_m[idx][i][ok]
            sxx.append(float(np.sum(dt * dt)))
            sxy.append(float(np.sum(dt * dy)))
    if not sxx:
        return 0.0, math.inf
    w, xy = np.array(sxx), np.array(sxy)
    slope = float(xy.sum() / w.sum())
    s = xy / w
    se = float(np.sqrt(np.sum(w**2 * (s - slope) ** 2)) / w.sum()) if s.size > 1 else math.inf
    return -slope, se


MIN_BLEACH_RATE_PER_S = math.log(2.0) / 20.0
"""Slowest bleaching (half-life 20 s at the sheet's centre) that the tracks are trusted to show:
on simulated captures without bleaching (three seeds) the estimate scattered by up to ±0.025 /s,
more than its standard error says."""


def significant_bleach_rate(rate_per_s: float, se_per_s: float) -> float:
    """The measured rate where the tracks clearly show bleaching, else 0 (no correction)."""
    return rate_per_s if rate_per_s > max(3.0 * se_per_s, MIN_BLEACH_RATE_PER_S) else 0.0


@dataclass
class ChannelCounts:
    """A channel's particle concentration by size class, in the measurement cell.

    ``per_ml`` holds each class's concentration (per mL of the measured suspension);
    ``resampled`` the same for bootstrap resamples of the tracks (chains of one particle's tracks
    drawn together); ``tracks`` the sized tracks per class.
    """

    edges_nm: np.ndarray
    per_ml: np.ndarray
    resampled: np.ndarray
    tracks: np.ndarray
    bleach_rate_per_s: float
    saturated_fraction: float
    complete_from_nm: float | None = None
    fresh_supply_per_s: tuple[float, float, float] | None = None
    fading_correction: float = 1.0


def channel_counts(
    videos: Sequence[VideoAnalysis],
    size: SizeResult,
    edges_nm: np.ndarray,
    model: DepthModel,
    calibration: Calibration | None = None,
    bleach_rate_per_s: float = 0.0,
    temperature_c: float = 25.0,
    viscosity_mpa_s: float | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
    min_frames: int = 10,
) -> ChannelCounts:
    """Concentration per size class of one channel (replicate videos averaged).

    Every detection counts with the inverse of its particle's detection depth (from its brightest
    frame over threshold and, when bleaching, its size); a calibration from a bead standard of
    known concentration, when given, sets the depth in µm (otherwise only the ratio between
    channels of the same optics is meaningful, and the model's scale is used). Tracks too short
    to size (3 frames or more, under the sizing minimum) are counted through the sized tracks of
    their brightness class. Sized tracks fall in a class by their estimated size.
    """
    from exocheck.nta.concentration import track_brightness_ratio

    edges = np.asarray(edges_nm, float)
    n_class = edges.size - 1
    rows, labels, sized_counts = [], [], []
    offset = 0
    saturated = []
    pooled: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    fade_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    # tiles no wider than leaves MIN_TILES of them over all the recordings
    field_um2 = sum(v.width_px * v.height_px * v.pixel_size_um**2 for v in videos)
    side_cap_um = math.sqrt(field_um2 / MIN_TILES)
    for v in videos:
        ids = v.track_stats["particle"].to_numpy()
        diameter = size.track_diameter_nm[offset : offset + ids.size]
        chain = _tiles(v, ids, diameter, temperature_c, viscosity_mpa_s, side_cap_um)
        chain = chain + 10_000 * len(labels)
        offset += ids.size
        frames = v.tracks.groupby("particle")["frame"].size()
        ratio = track_brightness_ratio(v.tracks, v.threshold)
        r_sized = ratio.reindex(ids).to_numpy(float)
        n_sized = frames.reindex(ids).to_numpy(float)
        # each particle's brightness is its own track's brightest frame: a population-free
        # choice, so that a control and the sample count the same kind of particle alike
        # (predicting it from a brightness-size line fitted over a mixture of vesicles and free
        # label gave the free label another depth in the sample than in its control)
        r_focus = np.nan_to_num(r_sized)
        pooled.append((r_sized, diameter, n_sized))
        depth = model.depth_um(r_focus)
        if bleach_rate_per_s > 0:
            # the particle's fading is read from its brightness, its size and when it was seen
            fade_parts.append(
                (
                    r_focus,
                    diameter,
                    track_times_s(v, ids),
                    np.full(ids.size, v.n_frames / v.fps),
                )
            )
        if calibration is not None:  # the model's shape, scaled to the beads' measured depth
            depth = depth * (
                calibration.depth_um
                / float(model.depth_um(np.array([calibration.bead_brightness_ratio]))[0])
            )
        volume_ml = v.area_um2 * 1e-12 * v.n_frames  # area × frames; depth is in the weights
        sized = n_sized / depth / volume_ml
        # tracks too short to size: their detections go to the sized tracks of their brightness
        # class, which stand for them
        r_all = ratio.to_numpy(float)
        n_all = frames.reindex(ratio.index).to_numpy(float)
        n_bc = int(np.clip(ids.size // 50, 1, 8))
        inner = np.quantile(np.log(r_sized), np.linspace(0, 1, n_bc + 1)[1:-1]) if ids.size else []
        c_sized = np.searchsorted(inner, np.log(r_sized))
        c_all = np.searchsorted(inner, np.log(r_all))
        total = np.bincount(c_all, n_all, minlength=n_bc)
        part = np.bincount(c_sized, n_sized, minlength=n_bc)
        factor = np.where(part > 0, total / np.where(part > 0, part, 1.0), 1.0)
        sized = sized * factor[c_sized] / len(videos)
        # each track is spread over the classes by its posterior probability of lying in each
        # (the fitted distribution as prior): a posterior-mean size would shrink the tracks
        # towards the channel's own mode and move whole tracks across a class edge
        post = size.class_posterior[size.track_class[offset - ids.size : offset]]
        grid_cls = np.searchsorted(edges, size.posterior_grid_nm, side="right") - 1
        grid_cls = np.where((grid_cls >= 0) & (grid_cls < n_class), grid_cls, n_class)
        share = np.zeros((ids.size, n_class + 1))
        for k in range(n_class + 1):
            share[:, k] = post[:, grid_cls == k].sum(axis=1)
        rows.append(share)
        labels.append(chain)
        sized_counts.append(sized)
        if v.saturated_fraction is not None:  # measured by a fluorescence-mode analysis
            saturated.append(v.saturated_fraction)
    share = np.concatenate(rows) if rows else np.zeros((0, n_class + 1))
    contribution = np.concatenate(sized_counts) if sized_counts else np.zeros(0)
    chains = np.concatenate(labels) if labels else np.zeros(0, int)
    # with bleaching, each track's count is divided by its fading at each fresh supply rate of
    # the grid; the rate is the one at which the corrected count stays level over the capture
    # (:func:`stationary_position`), refitted on each bootstrap resample
    _, chain_index = np.unique(chains, return_inverse=True)
    n_chains = int(chain_index.max()) + 1 if chain_index.size else 0
    if fade_parts and contribution.size:
        seen_ratio, diameter_all, time_all, duration_all = (
            np.concatenate(p) for p in zip(*fade_parts, strict=True)
        )
        fading = fading_by_supply(
            model,
            seen_ratio,
            diameter_all,
            time_all,
            float(duration_all.max()),
            bleach_rate_per_s,
            temperature_c,
            viscosity_mpa_s,
        )
        lean = time_all / duration_all - 0.5
    else:
        fading = np.ones((1, contribution.size))
        lean = np.zeros(contribution.size)
    by_rate = contribution[None, :] / fading  # [supply rate, track]
    table = np.zeros((fading.shape[0], n_chains, n_class + 1))
    tilt = np.zeros((fading.shape[0], n_chains))
    mass = np.zeros((fading.shape[0], n_chains))
    for k in range(fading.shape[0]):
        np.add.at(table[k], chain_index, by_rate[k][:, None] * share)
        np.add.at(tilt[k], chain_index, by_rate[k] * lean)
        np.add.at(mass[k], chain_index, by_rate[k])
    position = stationary_position(tilt.sum(axis=1), mass.sum(axis=1))
    per_ml = _at_position(table.sum(axis=1), position)[:n_class]
    tracks = share.sum(axis=0)[:n_class]
    # bootstrap: tiles drawn with replacement, each bringing all its tracks' contributions
    rng = np.random.default_rng(seed)
    resampled = np.zeros((n_bootstrap, n_class))
    positions = np.full(n_bootstrap, position)
    if n_chains:
        draws = rng.integers(0, n_chains, size=(n_bootstrap, n_chains))
        for b, d in enumerate(draws):
            if fading.shape[0] > 1:
                positions[b] = stationary_position(tilt[:, d].sum(axis=1), mass[:, d].sum(axis=1))
            resampled[b] = _at_position(table[:, d].sum(axis=1), positions[b])[:n_class]
    supply = None
    if fading.shape[0] > 1:
        grid = SUPPLY_GRID_PER_S
        supply = (
            float(_at_position(grid, position)),
            float(_at_position(grid, float(np.percentile(positions, 2.5)))),
            float(_at_position(grid, float(np.percentile(positions, 97.5)))),
        )
    plain = (contribution @ share)[:n_class]  # the same tracks, not corrected for fading
    fading_correction = float(per_ml.sum() / plain.sum()) if plain.sum() > 0 else 1.0
    complete = None
    if pooled:
        line = brightness_line(
            *(np.concatenate(part) for part in zip(*pooled, strict=True)), min_frames
        )
        if line is not None and line[1] > 0:
            complete = float(np.exp((math.log(COMPLETE_RATIO) - line[0]) / line[1]))
    return ChannelCounts(
        complete_from_nm=complete,
        edges_nm=edges,
        per_ml=per_ml,
        resampled=resampled,
        tracks=tracks,
        bleach_rate_per_s=bleach_rate_per_s,
        saturated_fraction=float(np.mean(saturated)) if saturated else 0.0,
        fresh_supply_per_s=supply,
        fading_correction=fading_correction,
    )


def brightness_line(
    ratio: np.ndarray, diameter_nm: np.ndarray, frames: np.ndarray, min_frames: int
) -> tuple[float, float] | None:
    """``(a, b)`` of ln(brightest / threshold) = a + b·ln(diameter) over the sized tracks.

    Fitted on the tracks of at least twice the sizing minimum (those that explored the slab)
    when there are ten of them, else on all; None with fewer than five.
    """
    ok = np.isfinite(ratio) & (ratio > 0) & (diameter_nm > 0)
    long = ok & (frames >= 2 * min_frames)
    fit = long if long.sum() >= 10 else ok
    if fit.sum() < 5:
        return None
    x, y = np.log(diameter_nm[fit]), np.log(ratio[fit])
    slope = float(np.cov(x, y)[0, 1] / np.var(x, ddof=1)) if np.ptp(x) > 0 else 0.0
    return float(np.mean(y)) - slope * float(np.mean(x)), slope


COMPLETE_RATIO = 3.0
"""In-focus peak over threshold from which a channel counts a size completely: closer to the
threshold, noise decides whether a particle is seen at all and the detection depth is uncertain.
"""


TILE_MIN_UM = 15.0
"""Smallest side of a bootstrap tile, µm."""

MIN_TILES = 12
"""Fewest bootstrap tiles over a recording's videos: with fewer, the bootstrap's spread is itself
too uncertain."""

TILE_REACH = 1.5
"""Tile side in units of the median particle's root-mean-square displacement over the capture."""


def _tiles(
    v: VideoAnalysis,
    ids: np.ndarray,
    diameter_nm: np.ndarray,
    temperature_c: float,
    viscosity_mpa_s: float | None,
    side_cap_um: float = math.inf,
) -> np.ndarray:
    """A tile of the field for each sized track: the bootstrap's resampling unit.

    A particle comes back to the slab again and again during a capture, as new tracks too far
    apart in time to be chained; its tracks are not independent, and the share of the capture
    it spends in the slab is what makes counts of few particles uncertain. It stays, though,
    near where it was: tiles 1.5 times as wide as the median particle's root-mean-square
    displacement over the whole capture hold most of each particle's tracks together (a spatial
    block bootstrap). Tiles are made smaller where that would leave fewer than
    :data:`MIN_TILES` over all the recordings, and never under :data:`TILE_MIN_UM`.
    """
    from exocheck.physics import diffusion_um2_s

    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    centre = v.tracks.groupby("particle")[["x", "y"]].mean().reindex(ids).to_numpy(float)
    d = float(np.median(diameter_nm[diameter_nm > 0])) if np.any(diameter_nm > 0) else 100.0
    d_um2_s = float(diffusion_um2_s(d, temperature_c, viscosity_mpa_s))
    reach_um = TILE_REACH * math.sqrt(4.0 * d_um2_s * v.n_frames / v.fps)
    width_um = v.width_px * v.pixel_size_um
    height_um = v.height_px * v.pixel_size_um
    side = float(np.clip(min(reach_um, side_cap_um), TILE_MIN_UM, max(width_um, height_um)))
    nx = max(int(width_um // side), 1)
    ny = max(int(height_um // side), 1)
    ix = np.clip(
        (np.nan_to_num(centre[:, 0]) * v.pixel_size_um / width_um * nx).astype(int), 0, nx - 1
    )
    iy = np.clip(
        (np.nan_to_num(centre[:, 1]) * v.pixel_size_um / height_um * ny).astype(int), 0, ny - 1
    )
    return (iy * nx + ix).astype(np.int64)


def saturated_share(v: VideoAnalysis) -> float:
    """Share of tracks whose brightest frame reaches the camera's full scale."""
    from exocheck.io.video import open_video

    t = v.tracks
    if t.empty:
        return 0.0
    best = t.loc[t.groupby("particle")["signal"].idxmax(), ["frame", "x", "y"]]
    hits = 0
    with open_video(v.path, fps=v.fps, pixel_size_um=v.pixel_size_um) as video:
        for frame, rows in best.groupby("frame"):
            image = video.read(int(frame), int(frame) + 1)[0]
            full = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else None
            if full is None:
                continue
            for x, y in zip(rows["x"].to_numpy(), rows["y"].to_numpy(), strict=True):
                ix, iy = round(x), round(y)
                patch = image[max(iy - 1, 0) : iy + 2, max(ix - 1, 0) : ix + 2]
                hits += bool(patch.size and patch.max() >= full)
    return hits / len(best)


def bleaching_factors(
    videos: Sequence[VideoAnalysis],
    diameter_nm: np.ndarray,
    model: DepthModel,
    rate_per_s: float,
    temperature_c: float,
    viscosity_mpa_s: float | None,
    min_frames: int = 10,
) -> np.ndarray:
    """Per sized track: its particle's detection slab with bleaching over the slab without.

    A track's count is divided by this to count its particle as if it had not faded: slow
    (large) particles linger in the light and fade more, so without it the large labelled
    particles are under-counted and the size distribution shifts down. The fresh supply is the
    rate at which the corrected count stays level over the capture (:func:`stationary_position`).
    """
    from exocheck.nta.concentration import track_brightness_ratio

    diameter = np.asarray(diameter_nm, float)
    if rate_per_s <= 0 or diameter.size == 0:
        return np.ones(diameter.size)
    ratios, frames, times, lean = [], [], [], []
    for v in videos:
        ids = v.track_stats["particle"].to_numpy()
        ratios.append(track_brightness_ratio(v.tracks, v.threshold).reindex(ids).to_numpy(float))
        frames.append(v.tracks.groupby("particle")["frame"].size().reindex(ids).to_numpy(float))
        times.append(track_times_s(v, ids))
        lean.append(times[-1] / (v.n_frames / v.fps) - 0.5)
    ratio, n_frames = np.concatenate(ratios), np.concatenate(frames)
    duration_s = max(v.n_frames / v.fps for v in videos)
    fading = fading_by_supply(
        model,
        np.nan_to_num(ratio),
        diameter,
        np.concatenate(times),
        duration_s,
        rate_per_s,
        temperature_c,
        viscosity_mpa_s,
    )
    count = n_frames / model.depth_um(np.nan_to_num(ratio))[None, :] / fading
    position = stationary_position(count @ np.concatenate(lean), count.sum(axis=1))
    return _at_position(fading, position)


def track_times_s(v: VideoAnalysis, ids: np.ndarray) -> np.ndarray:
    """Middle time of each track (``ids``), s from the capture's first frame."""
    return (v.tracks.groupby("particle")["frame"].mean().reindex(ids).to_numpy(float)) / v.fps


FADING_PATHS = 6000
"""Brownian paths along z per diffusion coefficient from which the fading is read."""

FADING_STEP = 0.1
"""Root-mean-square step of a path along z per time step, in sheet widths."""

FADING_SNAPSHOT_S = 0.25
"""Time between the path snapshots at which visibility is read, s."""

FADING_SMOOTH_S = 1.0
"""Width of the moving average over time of the visible shares, s (paths' counting noise)."""

_FADING_RATIOS = np.geomspace(1.5, 1e4, 48)
_FADING_BINS = 12


@dataclass(frozen=True)
class FadingTable:
    """How much of its unbleached slab a particle still fills, by diffusion, time and brightness.

    ``factor[t, d, r]``: at time ``times_s[t]`` after the light came on, the share of paths of
    diffusion ``d_um2_s[d]`` on which a particle of fresh in-focus brightness over threshold
    ``ratios[r]`` is seen (lit share × profile ≥ 1 / ratio), over the share on which it would be
    seen unbleached: the particle's slab shrinks by this share. ``lit_seen[t, d, r]``: the mean
    lit share of the paths on which it is seen (how much dimmer than fresh a seen track is).
    """

    d_um2_s: np.ndarray
    times_s: np.ndarray
    ratios: np.ndarray
    factor: np.ndarray
    lit_seen: np.ndarray

    def _interp(
        self, values: np.ndarray, ratio: np.ndarray, d_um2_s: np.ndarray, time_s: np.ndarray
    ) -> np.ndarray:
        """``values`` [t, d, r] interpolated in time and log brightness, nearest diffusion."""
        ld = np.log(self.d_um2_s)
        d_pos = np.interp(np.log(np.maximum(d_um2_s, 1e-9)), ld, np.arange(ld.size))
        d_idx = np.clip(np.rint(d_pos), 0, ld.size - 1).astype(int)
        t_pos = np.interp(time_s, self.times_s, np.arange(self.times_s.size))
        log_r = np.log(np.clip(ratio, self.ratios[0], self.ratios[-1]))
        r_pos = np.interp(log_r, np.log(self.ratios), np.arange(self.ratios.size))
        t0 = np.floor(t_pos).astype(int)
        t1 = np.minimum(t0 + 1, self.times_s.size - 1)
        r0 = np.floor(r_pos).astype(int)
        r1 = np.minimum(r0 + 1, self.ratios.size - 1)
        wt, wr = t_pos - t0, r_pos - r0
        v = values
        return (1 - wt) * ((1 - wr) * v[t0, d_idx, r0] + wr * v[t0, d_idx, r1]) + wt * (
            (1 - wr) * v[t1, d_idx, r0] + wr * v[t1, d_idx, r1]
        )

    def __call__(self, ratio: np.ndarray, d_um2_s: np.ndarray, time_s: np.ndarray) -> np.ndarray:
        """The factor of each particle (fresh brightness, diffusion, time since the light)."""
        return self._interp(self.factor, ratio, d_um2_s, time_s)

    def fresh_ratio(
        self, seen_ratio: np.ndarray, d_um2_s: np.ndarray, time_s: np.ndarray
    ) -> np.ndarray:
        """Fresh brightness of particles seen at ``seen_ratio``: the seen brightness over the
        mean lit share of the particles of that fresh brightness that are seen then (solved by
        iteration; at least the seen brightness)."""
        seen = np.clip(np.nan_to_num(np.asarray(seen_ratio, float)), self.ratios[0], None)
        fresh = seen.copy()
        for _ in range(FRESH_ITERATIONS):
            lit = self._interp(self.lit_seen, fresh, d_um2_s, time_s)
            fresh = np.clip(seen / np.maximum(lit, 1.0 / MAX_FRESH_GAIN), seen, None)
        return fresh


FRESH_ITERATIONS = 8
"""Iterations of :meth:`FadingTable.fresh_ratio` (each moves the fresh brightness less)."""

MAX_FRESH_GAIN = 20.0
"""Largest fresh brightness over a seen track's, as :data:`MIN_FADING` bounds the slab."""


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Moving sum over the first axis (``width`` odd), shorter at the ends."""
    if width <= 1 or values.shape[0] <= 1:
        return values
    kernel = np.ones(width)
    return np.apply_along_axis(np.convolve, 0, values, kernel, "same")


def fading_table(
    model: DepthModel,
    d_um2_s: np.ndarray,
    rate_per_s: float,
    duration_s: float,
    supply_per_s: float = 0.0,
    seed: int = 0,
) -> FadingTable:
    """Visible shares of fading particles from Brownian paths along z (:class:`FadingTable`).

    Paths start unbleached at the capture's first frame (the light reaches the sample as the
    capture starts: a new position of the cell, or the laser switched on), spread evenly along z
    far beyond the sheet, and diffuse freely along z: a cell is far deeper than the sheet, and
    its sheet reaches far beyond the field laterally. Fresh particles still arrive, by flow,
    convection or exchange with unlit liquid: each path is replaced by an unbleached one at
    ``supply_per_s`` (a rate the capture shows, :func:`stationary_position`, not a constant).
    On each path the lit share is ``exp(-k ∫ I(z) dt)``. A particle is seen at a snapshot when
    its lit share × profile × fresh brightness reaches the threshold: the whole distribution of
    lit shares at each ``z`` counts, not only their mean (under strong bleaching the particles
    at the centre are a mixture of faded ones and fresh arrivals).
    """
    d = np.asarray(d_um2_s, float)
    times = np.arange(0.0, duration_s + FADING_SNAPSHOT_S, FADING_SNAPSHOT_S)
    shape = (times.size, d.size, _FADING_RATIOS.size)
    factor, lit_seen = np.ones(shape), np.ones(shape)
    if rate_per_s <= 0:
        return FadingTable(d, times, _FADING_RATIOS, factor, lit_seen)
    rng = np.random.default_rng(seed)
    levels = 1.0 / _FADING_RATIOS
    width = 2 * round(FADING_SMOOTH_S / (2 * FADING_SNAPSHOT_S)) + 1
    n = FADING_PATHS
    for j, diffusion in enumerate(np.maximum(d, 1e-6)):
        reach = 3.0 * model.sheet_fwhm_um + 5.0 * math.sqrt(2 * diffusion * duration_s)
        dt = min(FADING_SNAPSHOT_S, (FADING_STEP * model.sheet_fwhm_um) ** 2 / (2 * diffusion))
        per_snapshot = math.ceil(FADING_SNAPSHOT_S / dt)
        dt = FADING_SNAPSHOT_S / per_snapshot
        step_um = math.sqrt(2 * diffusion * dt)
        renew = -math.expm1(-supply_per_s * dt)
        z = rng.uniform(-reach, reach, n)
        dose = np.zeros(n)
        seen = np.zeros((times.size, levels.size))
        seen_fresh = np.zeros((times.size, levels.size))
        lit_sum = np.zeros((times.size, levels.size))
        for i in range(times.size):
            for _ in range(per_snapshot if i else 0):
                light = model.light(z)
                z = z + step_um * rng.standard_normal(n)
                z = np.where(np.abs(z) > reach, np.sign(z) * 2 * reach - z, z)
                dose += 0.5 * (light + model.light(z)) * dt
                if renew > 0:
                    dose[rng.random(n) < renew] = 0.0
            peak = model.profile(z)
            share = np.exp(-rate_per_s * dose)
            order = np.argsort(peak * share)
            lit = (peak * share)[order]
            first = np.searchsorted(lit, levels, side="left")
            seen[i] = n - first
            # the lit shares of the paths above each level: a cumulative sum from the top
            top = np.concatenate([np.cumsum(share[order][::-1])[::-1], [0.0]])
            lit_sum[i] = top[first]
            seen_fresh[i] = n - np.searchsorted(np.sort(peak), levels, side="left")
        seen, seen_fresh, lit_sum = (_smooth(a, width) for a in (seen, seen_fresh, lit_sum))
        factor[:, j, :] = seen / np.maximum(seen_fresh, 1e-9)
        lit_seen[:, j, :] = np.where(seen > 0, lit_sum / np.maximum(seen, 1e-9), 0.0)
    return FadingTable(d, times, _FADING_RATIOS, np.clip(factor, 0.0, 1.0), lit_seen)


def fading_factor(
    model: DepthModel,
    ratio: np.ndarray,
    diameter_nm: np.ndarray,
    rate_per_s: float,
    temperature_c: float,
    viscosity_mpa_s: float | None,
    time_s: np.ndarray | None = None,
    duration_s: float | None = None,
    supply_per_s: float = 0.0,
) -> np.ndarray:
    """Slab in which a particle of a seen track is visible as it fades, over the slab of a
    particle as bright as the track that does not fade (:meth:`DepthModel.depth_um`).

    ``ratio`` is the track's brightest frame over threshold, ``time_s`` when it was seen (s from
    the capture's first frame; None: the middle of a capture of ``duration_s``), ``supply_per_s``
    the rate at which fresh particles replace faded ones (:func:`fading_table`). The particle's
    fresh brightness is the track's over the mean lit share of the seen particles like it
    (:meth:`FadingTable.fresh_ratio`); its slab is the one in which particles of that fresh
    brightness and size are seen at that time.
    """
    from exocheck.physics import diffusion_um2_s

    diameter = np.asarray(diameter_nm, float)
    if rate_per_s <= 0 or diameter.size == 0:
        return np.ones(diameter.size)
    d_um2_s = np.asarray(
        diffusion_um2_s(np.maximum(diameter, 1.0), temperature_c, viscosity_mpa_s), float
    )
    if time_s is None:
        duration = float(duration_s) if duration_s else 10.0
        time_s = np.full(diameter.size, 0.5 * duration)
    time_s = np.asarray(time_s, float)
    duration = float(duration_s) if duration_s else float(np.max(time_s, initial=0.0))
    lo, hi = max(float(d_um2_s.min()), 1e-3), max(float(d_um2_s.max()), 1e-3)
    bins = np.geomspace(lo, hi * 1.001, _FADING_BINS) if hi > lo * 1.01 else np.array([lo])
    table = fading_table(model, bins, rate_per_s, duration, supply_per_s)
    seen = np.nan_to_num(np.asarray(ratio, float))
    fresh = table.fresh_ratio(seen, d_um2_s, time_s)
    slab = model.depth_um(fresh) * table(fresh, d_um2_s, time_s)
    return np.clip(slab / model.depth_um(seen), MIN_FADING, 1.0 / MIN_FADING)


MIN_FADING = 0.05
"""Smallest share of its unbleached slab a track is counted in (at most 20 times its count)."""

SUPPLY_GRID_PER_S = np.concatenate([[0.0], np.geomspace(0.01, 10.0, 13)])
"""Fresh supply rates, 1/s, at which the fading is computed: from none (diffusion along z alone,
the most fading) to a particle replaced every 0.1 s (hardly any)."""


def fading_by_supply(
    model: DepthModel,
    ratio: np.ndarray,
    diameter_nm: np.ndarray,
    time_s: np.ndarray,
    duration_s: float,
    rate_per_s: float,
    temperature_c: float,
    viscosity_mpa_s: float | None,
) -> np.ndarray:
    """:func:`fading_factor` of each track at each rate of :data:`SUPPLY_GRID_PER_S`
    ([rate, track])."""
    return np.stack(
        [
            fading_factor(
                model,
                ratio,
                diameter_nm,
                rate_per_s,
                temperature_c,
                viscosity_mpa_s,
                time_s,
                duration_s,
                supply,
            )
            for supply in SUPPLY_GRID_PER_S
        ]
    )


def stationary_position(tilt: np.ndarray, mass: np.ndarray) -> float:
    """Where on :data:`SUPPLY_GRID_PER_S` the corrected count stays level over the capture.

    ``mass[k]`` is the corrected count at the grid's k-th rate, ``tilt[k]`` the same count
    weighted by each track's time from the middle of its capture (in capture lengths). A sample's
    concentration does not change while it is recorded, so its corrected detections are spread
    evenly over the capture, and their mean time is the middle. Too little fresh supply
    over-corrects the late tracks (mean time late), too much leaves the fading in (early). The
    fractional grid index at which the mean time crosses the middle is returned; 0 where even
    the most fading (no supply) leaves the mean early, the last index where the counts do not
    fall at all.
    """
    lean = np.asarray(tilt, float) / np.where(np.asarray(mass) > 0, mass, 1.0)
    if lean.size == 1 or lean[0] <= 0:
        return 0.0
    below = np.flatnonzero(lean < 0)
    if below.size == 0:
        return float(lean.size - 1)
    k = int(below[0])
    return float(k - 1 + lean[k - 1] / (lean[k - 1] - lean[k]))


def _at_position(values: np.ndarray, position: float) -> np.ndarray:
    """``values`` (first axis: the supply grid) interpolated at a fractional grid index."""
    lo = int(np.floor(position))
    hi = min(lo + 1, len(values) - 1)
    w = position - lo
    return (1.0 - w) * np.asarray(values[lo]) + w * np.asarray(values[hi])
