"""Write a measurement back out: a NanoSight-style summary CSV, or the JSON record.

The CSV follows the NTA 3.x ``ExperimentSummary.csv`` layout (ISO-8859-1, trailing commas,
bracketed sections, 1-nm bins 0.5 … N-0.5 nm) so that results from any instrument, or from the
exocheck engine, travel back into lab workflows built around NanoSight summaries. exocheck's
own NanoSight importer reads it back.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from exocheck import __version__
from exocheck.records import Measurement, atomic_write_bytes


def to_json(measurement: Measurement, path: str | os.PathLike[str]) -> None:
    """Write the measurement record as JSON (atomically)."""
    measurement.save(path)


def _one_nm_bins(measurement: Measurement) -> tuple[np.ndarray, np.ndarray]:
    """(centres, fractions) of the measurement's distribution re-binned to 1-nm bins."""
    edges = np.asarray(measurement.size.bin_edges_nm, dtype=float)
    density = np.asarray(measurement.size.density, dtype=float)
    if edges.size < 2 or density.size != edges.size - 1:
        return np.array([]), np.array([])
    top = max(1000, math.ceil(edges[-1]))
    new_edges = np.arange(0.0, top + 1.0)
    cumulative = np.concatenate([[0.0], np.cumsum(density)])
    at_new = np.interp(new_edges, edges, cumulative, left=0.0, right=1.0)
    return new_edges[:-1] + 0.5, np.clip(np.diff(at_new), 0.0, None)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.9g}"


def nanosight_csv_text(measurement: Measurement) -> str:
    """The NanoSight-style summary as text (see :func:`to_nanosight_csv`)."""
    m = measurement
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def row(*cells: object) -> None:
        writer.writerow([*("" if c is None else c for c in cells), ""])

    videos = m.per_video or []
    names = [v.name for v in videos] or [m.sample or "measurement"]
    n = len(names)
    conc = m.concentration
    stated = conc.particles_per_ml
    row("NTA Experiment Summary File")
    row(f"Created with exocheck {__version__} (from {m.source.instrument})")
    row()
    row("[Experiment Details]")
    row(
        "Software Version",
        f"exocheck {__version__}; {m.source.instrument} {m.source.software_version or ''}".strip(),
    )
    row("Experiment Name", m.sample or "")
    row("Time Captured", m.date.strftime("%H:%M:%S  %d/%m/%Y") if m.date else "")
    row("Sample Description", m.sample or "")
    row("Filename:", *names)
    row()
    row("[Conditions]")
    row("Temperature/C", *[_fmt(m.temperature_c)] * n)
    row("Viscosity/cP", *[_fmt(m.viscosity_mpa_s)] * n)
    if m.channel is not None:  # read back by read_nanosight as the record's channel
        if m.channel.laser_wavelength_nm is not None:
            row("Laser Type", *[f"{m.channel.laser_wavelength_nm:g} nm"] * n)
        if m.channel.mode == "scatter":
            label = "Scatter"
        elif m.channel.filter_wavelength_nm is not None:
            label = f"{m.channel.filter_wavelength_nm:g} nm"
        else:
            label = m.channel.filter_name or "Fluorescence"
        row("Filter", *[label] * n)
    row()
    row("[Results]")
    row("", *names, "Average", "Standard Error")
    se = conc.sd_per_ml / math.sqrt(n) if conc.sd_per_ml is not None and n > 1 else None
    if m.dilution_factor:
        row(
            "Dilution factor (concentrations adjusted for this factor)",
            *[_fmt(m.dilution_factor)] * n,
            _fmt(m.dilution_factor),
            "0",
        )
    else:
        row(
            "Dilution factor (concentrations adjusted for this factor)", *["Not recorded"] * (n + 1)
        )
    per_conc = [_fmt(v.concentration_per_ml) for v in videos] or [_fmt(stated)]
    row("Concentration (Particles / ml)", *per_conc, _fmt(stated), _fmt(se))
    per_ppf = [_fmt(v.particles_per_frame) for v in videos] or [_fmt(m.particles_per_frame)]
    row("Particles per frame", *per_ppf, _fmt(m.particles_per_frame), "")
    row("Completed tracks", *([_fmt(v.tracks) for v in videos] or [_fmt(m.tracks.count)]), "", "")
    row()
    row("[Information]")
    row(
        "Video valid", *([("Yes" if v.valid else f"No: {v.note or ''}") for v in videos] or ["Yes"])
    )
    row()
    row("[Size Data]")
    row("Analysis Method", m.source.instrument)
    row("Weighting", "Number")
    row("Filename", *names, "Average", "Standard Error")
    s = m.size
    for key, attr, per in (("Mean", s.mean_nm, "mean_nm"), ("Mode", s.mode_nm, "mode_nm"), ("SD", s.sd_nm, None),
                           ("D10", s.d10_nm, None), ("D50", s.d50_nm, "d50_nm"), ("D90", s.d90_nm, None)):  # fmt: skip
        values = [_fmt(getattr(v, per)) if per else "" for v in videos] or [_fmt(attr)]
        row(key, *values, _fmt(attr), "")
    row(
        "Valid Tracks",
        *([_fmt(v.tracks) for v in videos] or [_fmt(m.tracks.count)]),
        _fmt(m.tracks.count),
        "",
    )
    centres, fractions = _one_nm_bins(m)
    if centres.size:
        total = stated if stated else 1.0
        row()
        row("Graph Data")
        row(
            "Bin centre (nm)",
            "Concentration (particles / ml)",
            "Concentration average",
            "Standard Error",
        )
        for centre, frac in zip(centres, fractions, strict=True):
            value = _fmt(float(frac * total))
            row(f"{centre:.1f}", value, value, "0")
    row()
    if m.warnings:
        row("[Remarks]")
        for warning in m.warnings:
            row(warning)
    return buffer.getvalue()


def to_nanosight_csv(measurement: Measurement, path: str | os.PathLike[str]) -> None:
    """Write a NanoSight NTA 3.x-style ``ExperimentSummary.csv`` (ISO-8859-1, atomically).

    Concentration rows carry the measurement's stated values (``Average`` = the original
    sample's concentration, adjusted for the recorded dilution); the number-weighted size block
    carries its summary statistics; ``Graph Data`` holds the distribution re-binned to 1-nm
    bins, scaled to the concentration. Characters outside ISO-8859-1 are written as ``?``.
    """
    text = nanosight_csv_text(measurement)
    atomic_write_bytes(Path(path), text.encode("latin-1", errors="replace"))
