"""Vendor per-track data re-sized by exocheck's maximum-likelihood sizing.

A vendor's per-track export gives each track's diameter (from the track's own mean squared
displacement) and its length. The histogram of those diameters is broadened by finite track
length: a track of n steps knows its D only to about 1/sqrt(n). exocheck's sizing
(:func:`exocheck.nta.sizing.size_distribution`) finds the distribution of diameters that makes
the observed tracks most probable, accounting for each track's length.

From a vendor diameter d_v and length L frames, the track's mean squared single-frame
displacement per axis is m = 2 D(d_v) Δt with n = L - 1 steps. Localisation noise and motion
blur are not in these exports (the vendor's per-track D already contains them), so both are set
to zero: what changes between the two distributions is the finite-track correction alone.
With zero blur and noise, Δt, temperature and viscosity cancel between m and its expectation,
so the result does not depend on them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments.particles import (
    TrackTable,
    is_particle_table_name,
    particle_tables_for,
    read_track_table,
)
from exocheck.records import Measurement

#: Shortest usable track: two steps (the sizing needs at least one displacement pair).
MIN_TRACK_FRAMES = 3
STATS = ("mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm")


def vendor_tracks(path: str | Path) -> TrackTable | None:
    """Per-track vendor data for an imported path, or None when there is none.

    A per-particle CSV or a per-track FCS file is its own data; a NanoSight summary brings the
    per-particle tables beside it (same experiment name).
    """
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix.lower() == ".fcs":
        from exocheck.instruments.fcs import read_fcs_tracks

        return read_fcs_tracks(path)
    if is_particle_table_name(path.name):
        return read_track_table(path)
    tables = [read_track_table(p) for p in particle_tables_for(path)]
    if not tables:
        return None
    return TrackTable(
        size_nm=np.concatenate([t.size_nm for t in tables]),
        length_frames=np.concatenate([t.length_frames for t in tables]),
        excluded=sum(t.excluded for t in tables),
        source=", ".join(t.source for t in tables),
    )


def _frame_rate(measurement: Measurement) -> float | None:
    for key, value in measurement.settings.items():
        if "frame rate" in key.lower() or key.lower() in ("fps", "framerate"):
            values = value if isinstance(value, list) else [value]
            for v in values:
                try:
                    number = float(str(v).replace(",", "."))
                except ValueError:
                    continue
                if number > 0:
                    return number
    return None


def resize(measurement: Measurement, tracks: TrackTable) -> Measurement:
    """The record with exocheck's re-sized distribution in ``diagnostics["resized"]``.

    ``size`` keeps the vendor's distribution and stated statistics; ``diagnostics["resized"]``
    holds exocheck's (bin edges, number fractions, statistics, 95 % bootstrap intervals) and
    the plain statistics of the vendor's per-track diameters.

    Raises
    ------
    FormatError
        Fewer than 5 tracks of at least :data:`MIN_TRACK_FRAMES` frames.
    """
    from exocheck.errors import AnalysisError
    from exocheck.nta.sizing import size_distribution
    from exocheck.physics import diffusion_um2_s

    usable = (tracks.length_frames >= MIN_TRACK_FRAMES) & (tracks.size_nm > 0)
    sizes = tracks.size_nm[usable]
    steps = tracks.length_frames[usable] - 1.0
    temperature_c = measurement.temperature_c if measurement.temperature_c is not None else 25.0
    viscosity = measurement.viscosity_mpa_s
    fps = _frame_rate(measurement) or 30.0
    frame_s = 1.0 / fps
    if sizes.size < 5:
        raise FormatError(
            f"{tracks.source}: {sizes.size} tracks of {MIN_TRACK_FRAMES} frames or more; "
            "re-sizing needs at least 5"
        )
    msd1_um2 = 2.0 * np.asarray(diffusion_um2_s(sizes, temperature_c, viscosity)) * frame_s
    try:
        result = size_distribution(
            msd1_um2, steps, np.zeros_like(msd1_um2), frame_s, 0.0, temperature_c, viscosity
        )
    except AnalysisError as exc:
        raise FormatError(f"{tracks.source}: cannot re-size ({exc})") from None
    per_track = {
        "mean_nm": float(sizes.mean()),
        "sd_nm": float(sizes.std(ddof=1)) if sizes.size > 1 else None,
        "d10_nm": float(np.quantile(sizes, 0.1)),
        "d50_nm": float(np.quantile(sizes, 0.5)),
        "d90_nm": float(np.quantile(sizes, 0.9)),
    }
    resized = {
        "method": "exocheck maximum-likelihood sizing (exocheck.nta.sizing.size_distribution) "
        "on the vendor's per-track diameters and lengths; no blur or localisation noise",
        "source": tracks.source,
        "tracks": int(sizes.size),
        "tracks_too_short": int((~usable).sum()),
        "tracks_excluded_by_vendor": tracks.excluded,
        "mean_track_length_frames": float(np.mean(tracks.length_frames[usable])),
        "bin_edges_nm": [float(e) for e in result.bin_edges_nm],
        "density": [float(w) for w in result.weights / result.weights.sum()],
        **{k: float(v) for k, v in result.stats.items()},
        "ci": {k: [float(lo), float(hi)] for k, (lo, hi) in result.ci.items()},
        "vendor_per_track": per_track,
    }
    diagnostics = {**measurement.diagnostics, "resized": resized}
    return measurement.model_copy(update={"diagnostics": diagnostics})


def comparison_rows(
    measurement: Measurement,
) -> list[tuple[str, float | None, float | None, float | None]]:
    """(statistic, vendor stated, vendor per-track, exocheck) rows of a re-sized record."""
    resized = measurement.diagnostics.get("resized") or {}
    per_track = resized.get("vendor_per_track", {})
    return [
        (key, getattr(measurement.size, key), per_track.get(key), resized.get(key)) for key in STATS
    ]


def comparison_png(measurement: Measurement, title: str | None = None) -> bytes:
    """PNG of the vendor's distribution and exocheck's re-sized one, per nm, on one axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    resized = measurement.diagnostics["resized"]
    fig = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    vendor_edges = np.asarray(measurement.size.bin_edges_nm)
    if vendor_edges.size > 1:
        density = np.asarray(measurement.size.density) / np.diff(vendor_edges)
        ax.stairs(density, vendor_edges, label=f"{measurement.source.instrument} (vendor)",
                  color="0.45", fill=True, alpha=0.35)  # fmt: skip
    edges = np.asarray(resized["bin_edges_nm"])
    density = np.asarray(resized["density"]) / np.diff(edges)
    ax.stairs(density, edges, label="exocheck re-sized (finite-track correction)",
              color="tab:blue", linewidth=1.8)  # fmt: skip
    for key, style in (("d50_nm", "--"),):
        if measurement.size.d50_nm:
            ax.axvline(measurement.size.d50_nm, color="0.45", linestyle=style, linewidth=1)
        ax.axvline(resized[key], color="tab:blue", linestyle=style, linewidth=1)
    top = max(resized.get("d90_nm", 0) * 2.5, measurement.size.d90_nm or 0.0)
    ax.set_xlim(0, top or None)
    ax.set_xlabel("diameter (nm)")
    ax.set_ylabel("number fraction per nm")
    ax.set_title(
        title
        or f"{measurement.sample or ''}: vendor vs exocheck sizing ({resized['tracks']} tracks)"
    )
    ax.legend(frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
