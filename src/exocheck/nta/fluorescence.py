"""Fluorescence NTA: detection volumes, photobleaching and per-size concentrations of a channel.

A particle is detected while its peak over the detection threshold stays above 1. Its in-focus
brightness over threshold ``r`` and the optics' axial profile ``p(z)`` set how deep it is seen:
the detection slab is ``{z : r · s(z) · p(z) ≥ 1}``, where ``s(z)`` is the share of its
fluorophores still lit (1 in scatter). The profile is the light sheet's Gaussian (full width
``sheet_fwhm_um``) times the peak loss of a defocused spot, ``1 / (1 + (z / z_R)²)`` with
``z_R = depth_of_field_um``. Only the profile's shape matters when two channels of the same
instrument are compared: its scale cancels in their ratio.

**Bleaching.** Each fluorophore bleaches at rate ``k · I(z)`` in the sheet's light ``I(z)``.
Particles diffuse in from an unlit reservoir, so in the steady state the mean lit share ``s(z)``
of particles at ``z`` obeys the Feynman–Kac equation ``D s'' = k I(z) s`` with ``s → 1`` far from
the sheet. Slow (large) particles linger and fade more; a fluorescent track that ends because its
particle faded is not a particle leaving the slab, and counting it as one would under-count the
large labelled particles. Here every track counts with the inverse of the slab in which a
particle of its size and fresh brightness stays visible, bleaching included.

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
from scipy.linalg import solve_banded

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


@dataclass(frozen=True)
class DepthModel:
    """The axial detection profile shared by the channels of one instrument."""

    sheet_fwhm_um: float = SHEET_FWHM_UM
    depth_of_field_um: float = DEPTH_OF_FIELD_UM
    reservoir_um: float | None = None

    @property
    def reservoir(self) -> float:
        """Distance from the sheet's centre beyond which particles are fresh, µm (default 1.5
        sheet widths)."""
        return self.reservoir_um if self.reservoir_um is not None else 1.5 * self.sheet_fwhm_um

    def __post_init__(self) -> None:
        if self.reservoir_um is not None and not (
            math.isfinite(self.reservoir_um) and self.reservoir_um > 0
        ):
            raise ParameterError(
                f"reservoir_um must be a finite number > 0, got {self.reservoir_um}"
            )
        for name in ("sheet_fwhm_um", "depth_of_field_um"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ParameterError(f"{name} must be a finite number > 0, got {value}")

    @property
    def z_um(self) -> np.ndarray:
        """Axial grid, µm: ±3 sheet widths, where the light has fallen below 10⁻¹⁰."""
        return np.linspace(-3 * self.sheet_fwhm_um, 3 * self.sheet_fwhm_um, _GRID_POINTS)

    def light(self, z_um: np.ndarray) -> np.ndarray:
        """Relative illumination of the sheet at ``z_um``."""
        return np.exp(-math.log(2.0) * (2.0 * np.asarray(z_um) / self.sheet_fwhm_um) ** 2)

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


def lit_share(model: DepthModel, d_um2_s: np.ndarray, rate_per_s: float) -> np.ndarray:
    """Steady-state mean share of lit fluorophores ``s(z)`` for each diffusion coefficient.

    Solves ``D s'' = k I(z) s`` on :attr:`DepthModel.z_um` with ``s = 1`` from
    :attr:`DepthModel.reservoir` outwards. Along z the sheet is a slab, and one-dimensional
    diffusion returns to where it started: with no exchange the lit share would fall without
    limit over a long capture. Where fresh particles come from (convection, the sample's flow,
    the cell's depth) is therefore part of the model; by default, particles beyond 1.5 sheet
    widths from the centre are fresh. Returns an array [len(d_um2_s), grid].
    """
    z = model.z_um
    step = float(z[1] - z[0])
    d = np.asarray(d_um2_s, float)
    if rate_per_s <= 0:
        return np.ones((d.size, z.size))
    inner = np.abs(z) < model.reservoir
    light = model.light(z)[inner]
    out = np.ones((d.size, z.size))
    for i, diffusion in enumerate(np.maximum(d, 1e-6)):
        a = diffusion / step**2
        n = light.size
        bands = np.zeros((3, n))
        bands[0, 1:] = a
        bands[1] = -2.0 * a - rate_per_s * light
        bands[2, :-1] = a
        rhs = np.zeros(n)
        rhs[0] = rhs[-1] = -a
        out[i, inner] = solve_banded((1, 1), bands, rhs)
    return np.clip(out, 0.0, 1.0)


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
            # the share of its slab in which the particle stays visible as it fades, from the
            # larger of its own and its size's typical brightness (a dim track alone would seem
            # to vanish everywhere and count without bound)
            typical = line_ratio(r_sized, diameter, n_sized, min_frames)
            depth = depth * fading_factor(
                model, typical, diameter, bleach_rate_per_s, temperature_c, viscosity_mpa_s
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
    per_ml = (contribution @ share)[:n_class]
    tracks = share.sum(axis=0)[:n_class]
    # bootstrap: tiles drawn with replacement, each bringing all its tracks' contributions
    _, chain_index = np.unique(chains, return_inverse=True)
    n_chains = int(chain_index.max()) + 1 if chain_index.size else 0
    table = np.zeros((n_chains, n_class + 1))
    np.add.at(table, chain_index, contribution[:, None] * share)
    rng = np.random.default_rng(seed)
    resampled = np.zeros((n_bootstrap, n_class))
    if n_chains:
        draws = rng.integers(0, n_chains, size=(n_bootstrap, n_chains))
        resampled = np.stack([table[d].sum(axis=0)[:n_class] for d in draws])
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
    particles are under-counted and the size distribution shifts down.
    """
    from exocheck.nta.concentration import track_brightness_ratio

    diameter = np.asarray(diameter_nm, float)
    if rate_per_s <= 0 or diameter.size == 0:
        return np.ones(diameter.size)
    ratios, frames = [], []
    for v in videos:
        ids = v.track_stats["particle"].to_numpy()
        ratios.append(track_brightness_ratio(v.tracks, v.threshold).reindex(ids).to_numpy(float))
        frames.append(v.tracks.groupby("particle")["frame"].size().reindex(ids).to_numpy(float))
    typical = line_ratio(np.concatenate(ratios), diameter, np.concatenate(frames), min_frames)
    return fading_factor(model, typical, diameter, rate_per_s, temperature_c, viscosity_mpa_s)


def line_ratio(
    ratio: np.ndarray, diameter_nm: np.ndarray, frames: np.ndarray, min_frames: int
) -> np.ndarray:
    """A track's peak over threshold, or the :func:`brightness_line`'s prediction for its size
    where that is larger (a track that never crossed focus under-states its particle)."""
    own = np.nan_to_num(ratio)
    line = brightness_line(ratio, diameter_nm, frames, min_frames)
    if line is None:
        return own
    return np.maximum(own, np.exp(line[0] + line[1] * np.log(np.maximum(diameter_nm, 1e-9))))


def fading_factor(
    model: DepthModel,
    ratio: np.ndarray,
    diameter_nm: np.ndarray,
    rate_per_s: float,
    temperature_c: float,
    viscosity_mpa_s: float | None,
) -> np.ndarray:
    """Slab in which a particle stays visible as it fades, over its slab without bleaching.

    ``ratio`` is its brightness over threshold when fresh; the lit share comes from its size's
    diffusion coefficient (:func:`lit_share`). A particle is at its brightest just after it
    arrives from the unlit reservoir, so a brightest frame stands for the fresh brightness.
    """
    from exocheck.physics import diffusion_um2_s

    d_um2_s = np.asarray(
        diffusion_um2_s(np.maximum(diameter_nm, 1.0), temperature_c, viscosity_mpa_s)
    )
    bins = np.geomspace(max(d_um2_s.min(), 1e-3), max(d_um2_s.max(), 1e-3) * 1.001, 25)
    which = np.clip(np.searchsorted(bins, d_um2_s), 0, bins.size - 1)
    lit = lit_share(model, bins, rate_per_s)[which]
    return np.clip(model.depth_um(ratio, lit) / model.depth_um(ratio), 0.05, 1.0)
