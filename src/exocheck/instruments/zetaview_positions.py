"""The ZetaView ``*_11pos.txt`` position table: one row per camera position, then statistics."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments._build import file_sha256
from exocheck.instruments._text import decode, norm_key, read_bytes, to_float
from exocheck.records import (
    Concentration,
    Measurement,
    SizeDistribution,
    Source,
    TrackSummary,
    VideoSummary,
)

_SUMMARY_ROWS = ("mean", "st.dev.", "st.dev", "stdev", "rel.st.dev.", "rel.st.dev", "rel. st.dev.")


@dataclass
class PositionTable:
    """Per-position values, the table's own summary rows and warnings about removed positions."""

    positions: list[VideoSummary] = field(default_factory=list)
    summary: dict[str, dict[str, float | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    sd_per_ml: float | None = None


def _col(keys: list[str], *prefixes: str) -> int | None:
    for prefix in prefixes:
        for i, key in enumerate(keys):
            if key.startswith(prefix):
                return i
    return None


def is_positions_table(text: str) -> bool:
    """True when decoded text holds an 11-position table header."""
    for line in text.splitlines()[:200]:
        keys = [norm_key(c) for c in line.split("\t")]
        if "position" in keys and any(k.startswith("removal") for k in keys):
            return True
    return False


def read_positions_table(path: Path) -> PositionTable:
    """Parse a ``_11pos.txt`` table (tab-separated, header found by name)."""
    lines = decode(read_bytes(path)).splitlines()
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if "position" in [norm_key(c) for c in line.split("\t")]
        ),
        None,
    )
    if start is None:
        raise FormatError(f"{path}: no 'Position' header in the ZetaView position table")
    keys = [norm_key(c) for c in lines[start].split("\t")]
    col = {
        "use": _col(keys, "use"),
        "position": _col(keys, "position"),
        "particles": _col(keys, "av. no of particles", "av. no. of particles", "av."),
        "measured": _col(keys, "conc. (p./ml)", "conc."),
        "original": _col(keys, "orig. conc", "orig"),
        "traces": _col(keys, "no. of traces", "no of traces"),
        "x50": _col(keys, "x50"),
        "peak": _col(keys, "peak"),
        "removal": _col(keys, "removal"),
    }
    table = PositionTable()
    originals: list[float] = []
    removed: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        cells = [c.strip() for c in line.split("\t")]
        if not any(cells):
            continue

        def cell(name: str, cells: list[str] = cells) -> str:
            i = col[name]
            return cells[i] if i is not None and i < len(cells) else ""

        label = norm_key(cells[0]) if cells else ""
        if label in _SUMMARY_ROWS or norm_key(cell("position")) in _SUMMARY_ROWS:
            name = label or norm_key(cell("position"))
            table.summary[name] = {
                k: to_float(cell(k)) for k in col if k not in ("use", "position", "removal")
            }
            continue
        position = cell("position") or str(len(table.positions) + 1)
        removal = cell("removal")
        use = norm_key(cell("use"))
        used = not removal and use not in ("0", "false", "no", "-", "removed")
        original = to_float(cell("original"))
        traces = to_float(cell("traces"))
        if used and original is not None:
            originals.append(original)
        note = None if used else f"position removed: {removal or 'not used'}"
        if to_float(position) is None and not re.search(r"\d", position):
            continue  # a stray text row
        if not used:
            removed.setdefault(removal or "not used", []).append(position)
        table.positions.append(
            VideoSummary(
                name=f"position {position}",
                concentration_per_ml=original,
                particles_per_frame=to_float(cell("particles")),
                tracks=int(traces) if traces is not None else None,
                d50_nm=to_float(cell("x50")),
                mode_nm=to_float(cell("peak")),
                valid=used,
                note=note,
            )
        )
    if not table.positions:
        raise FormatError(f"{path}: the ZetaView position table has no position rows")
    if removed:  # one line per table, not one per position
        count = sum(len(v) for v in removed.values())
        reasons = "; ".join(f"{why}: {', '.join(where)}" for why, where in removed.items())
        table.warnings.append(
            f"{count} of {len(table.positions)} positions removed by the instrument ({reasons})"
        )
    if len(originals) > 1:
        table.sd_per_ml = float(np.std(originals, ddof=1))
    return table


def find_positions(size_file: Path) -> Path | None:
    """The ``*_11pos.txt`` beside a ``*_size_<laser>.txt`` export of the same run, if any.

    A table named after the size file itself (``<stem>_11pos.txt``, as 8.06 writes it) is
    preferred: a run recorded at several lasers or through a filter as well as in scatter
    leaves several size files with one run prefix.
    """
    match = re.match(r"(.+?)_size_", size_file.name, re.IGNORECASE)
    if not match:
        return None
    prefix = match.group(1).lower()
    stem = size_file.stem.lower()
    try:
        own = [
            c
            for c in sorted(size_file.parent.iterdir())
            if re.fullmatch(re.escape(stem) + r"_\d+pos\.txt", c.name.lower()) and c.is_file()
        ]
        if own:
            return own[0]
        for candidate in sorted(size_file.parent.iterdir()):
            name = candidate.name.lower()
            if (
                name.startswith(prefix)
                and "pos" in name
                and name.endswith(".txt")
                and candidate.is_file()
            ):
                if re.search(r"_\d+pos\.txt$", name):
                    return candidate
    except OSError:
        return None
    return None


def read_zetaview_positions(path: str | Path) -> Measurement:
    """Import a ``_11pos.txt`` table on its own: per-position values and the table's means.

    The table holds no size distribution; ``size.d50_nm`` is the stated mean X50 and the
    concentrations come from the ``Mean`` row (``Orig. Conc.`` for the original sample).
    """
    path = Path(path)
    table = read_positions_table(path)
    mean = table.summary.get("mean", {})
    valid = [p for p in table.positions if p.valid]

    def avg(values: list[float | None]) -> float | None:
        finite = [v for v in values if v is not None]
        return float(np.mean(finite)) if finite else None

    original = mean.get("original") or avg([p.concentration_per_ml for p in valid])
    measured = mean.get("measured")
    dilution = original / measured if original and measured else None
    warnings = [*table.warnings, "position table only: no size distribution in this file"]
    if dilution is None:
        warnings.append("dilution not recorded: concentration is as stated")
    d50 = mean.get("x50") or avg([p.d50_nm for p in valid])
    traces = [p.tracks for p in table.positions if p.tracks is not None and p.valid]
    sha = file_sha256(path)
    return Measurement(
        source=Source(instrument="ZetaView", file_sha256=sha, files=[path.name]),
        dilution_factor=dilution,
        size=SizeDistribution(d50_nm=d50, mode_nm=mean.get("peak")),
        concentration=Concentration(
            particles_per_ml=original,
            measured_per_ml=measured or original,
            dilution_factor=dilution,
            sd_per_ml=table.sd_per_ml,
        ),
        tracks=TrackSummary(count=int(sum(traces))),
        particles_per_frame=mean.get("particles"),
        per_video=table.positions,
        instrument_summary={
            "positions": {
                k: {n: v for n, v in row.items() if v is not None}
                for k, row in table.summary.items()
            }
        },
        warnings=warnings,
        provenance={"inputs": {path.name: sha}},
    )
