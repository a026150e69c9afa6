"""Per-track vendor exports: one row per particle track (or per track point).

* NanoSight per-particle CSVs (``…ParticleData.csv``: one row per track; ``…AllTracks.csv``:
  one row per track point) with columns such as ``Particle ID``, ``Size/nm``,
  ``Diffusion coefficient/nm^2 s^-1``, ``Tracklength`` and ``Included in distribution?``.
  Their layout is known from third-party parsers only, so columns are found by name and a
  track's length is counted from its rows where no length column exists.
* ZetaView per-track FCS exports (channels ``TraceLength`` and ``Size``) are read by
  :mod:`.fcs`, which hands the same :class:`TrackTable` to the re-sizing.

The vendor's own statistics are not in these files: a per-track table imported on its own
holds the histogram of the vendor's per-track sizes, computed by exocheck and said so.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments._build import distribution, file_sha256
from exocheck.instruments._text import decode, norm_key, read_bytes, to_float
from exocheck.records import Concentration, Measurement, Source, TrackSummary

_NAME = re.compile(r"(particle[ _-]?data|all[ _-]?tracks)\.csv$", re.IGNORECASE)


@dataclass
class TrackTable:
    """Per-track vendor values: diameter (nm) and length (frames) of each included track."""

    size_nm: np.ndarray
    length_frames: np.ndarray
    excluded: int = 0  # tracks the vendor left out of its distribution
    source: str = ""


def is_particle_table_name(name: str) -> bool:
    """True for a NanoSight per-particle table's file name."""
    return bool(_NAME.search(name))


def particle_tables_for(summary: Path) -> list[Path]:
    """Per-particle tables beside a NanoSight summary (same experiment name prefix)."""
    stem = re.sub(r"[-_ ]?experimentsummary$", "", summary.stem, flags=re.IGNORECASE)
    if stem == summary.stem or not stem or summary.suffix.lower() != ".csv":
        return []
    try:
        return sorted(
            p
            for p in summary.parent.iterdir()
            if p.is_file() and p.name.lower().startswith(stem.lower()) and _NAME.search(p.name)
        )
    except OSError:
        return []


def is_particle_table(text: str) -> bool:
    """True when decoded text has a per-particle header (a particle id and a size column)."""
    return _header(text.splitlines()[:50]) is not None


def _header(lines: list[str]) -> tuple[int, dict[str, int]] | None:
    for i, line in enumerate(lines):
        try:
            cells = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            continue
        keys = [norm_key(c) for c in cells]
        pid = next(
            (j for j, k in enumerate(keys) if k in ("particle id", "particle", "track id")), None
        )
        size = next((j for j, k in enumerate(keys) if k.startswith("size")), None)
        if pid is None or size is None:
            continue
        cols = {"id": pid, "size": size}
        for name, prefixes in (
            ("length", ("tracklength", "track length", "trace length", "tracelength")),
            ("included", ("included",)),
            ("frame", ("frame",)),
        ):
            found = next((j for j, k in enumerate(keys) if k.startswith(prefixes)), None)
            if found is not None:
                cols[name] = found
        return i, cols
    return None


def read_track_table(path: Path) -> TrackTable:
    """Per-track sizes and lengths of a NanoSight per-particle CSV."""
    text = decode(read_bytes(path))
    lines = text.splitlines()
    found = _header(lines[:50])
    if found is None:
        raise FormatError(f"{path}: no 'Particle ID' / 'Size' header: not a per-particle table")
    start, cols = found
    sizes: dict[str, float] = {}
    lengths: dict[str, float] = {}
    points: dict[str, int] = {}
    excluded: set[str] = set()
    try:
        rows = csv.reader(io.StringIO("\n".join(lines[start + 1 :])))
        for row in rows:
            if len(row) <= max(cols["id"], cols["size"]):
                continue
            pid = row[cols["id"]].strip()
            size = to_float(row[cols["size"]])
            if not pid or size is None:
                continue
            sizes.setdefault(pid, size)
            points[pid] = points.get(pid, 0) + 1
            if "length" in cols and cols["length"] < len(row):
                length = to_float(row[cols["length"]])
                if length is not None:
                    lengths.setdefault(pid, length)
            if "included" in cols and cols["included"] < len(row):
                if norm_key(row[cols["included"]]) in ("no", "false", "0", "n"):
                    excluded.add(pid)
    except csv.Error as exc:
        raise FormatError(f"{path}: damaged CSV ({exc})") from None
    ids = [p for p in sizes if p not in excluded and sizes[p] > 0]
    if not ids:
        raise FormatError(f"{path}: the per-particle table holds no sized track")
    # without a length column, a table with one row per track point (AllTracks) gives a
    # track's length as its number of rows
    length = [lengths.get(p, 0.0) if "length" in cols else float(points[p]) for p in ids]
    return TrackTable(
        size_nm=np.array([sizes[p] for p in ids], dtype=float),
        length_frames=np.array(length, dtype=float),
        excluded=len(excluded),
        source=path.name,
    )


def histogram_measurement(
    tracks: TrackTable, path: Path, instrument: str, warnings: list[str]
) -> Measurement:
    """A record from per-track sizes alone: their 1-nm histogram and its statistics."""
    sizes = tracks.size_nm
    top = float(np.ceil(sizes.max())) + 1.0
    edges = np.arange(0.0, top + 1.0, 1.0)
    counts, _ = np.histogram(sizes, bins=edges)
    q = [float(v) for v in np.quantile(sizes, [0.1, 0.5, 0.9])]
    stated = {
        "mean_nm": float(sizes.mean()),
        "sd_nm": float(sizes.std(ddof=1)) if sizes.size > 1 else None,
    }
    size = distribution(edges, counts.astype(float), stated, q)
    sha = file_sha256(path)
    return Measurement(
        source=Source(instrument=instrument, file_sha256=sha, files=[path.name]),
        size=size,
        concentration=Concentration(),
        tracks=TrackSummary(
            count=int(sizes.size),
            mean_length_frames=float(np.mean(tracks.length_frames))
            if tracks.length_frames.size
            else None,
        ),
        instrument_summary={
            "computed_by_exocheck": "histogram of the vendor's per-track sizes (1-nm bins); "
            "statistics from the per-track sizes",
            "tracks excluded by the vendor": tracks.excluded,
        },
        warnings=[*warnings, "per-track table: no concentration in this file"],
        provenance={"inputs": {path.name: sha}},
    )


def read_nanosight_particles(path: str | Path) -> Measurement:
    """Import a NanoSight per-particle CSV on its own (sizes of the tracks it lists)."""
    path = Path(path)
    tracks = read_track_table(path)
    return histogram_measurement(tracks, path, "NanoSight NTA", [])
