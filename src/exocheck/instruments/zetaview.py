"""Particle Metrix ZetaView: size ``.txt`` exports and the ``_11pos.txt`` position table.

The size file is a header of ``Key:<TAB>value`` lines (several pairs on a line, ``Dilution::``
with a double colon, ``Conductivity: 65.0`` with a space) of varying length, then a
``Size Distribution`` table: 5-nm linear bins, a separator row of ``-1`` values and a log-spaced
table (ignored). Keys are matched by name, case-insensitively; decimal commas are accepted.

Definitions (as the instrument states them): ΣNumber = ``Number of Traces``; ΣConcentration =
the measured (diluted) concentration in particles/mL; × ``Dilution`` = the original sample's
concentration. X10/X50/X90 interpolate the number cumulative at bin centres.

The channel: ``Filter Wavelength nm:`` ``Scatter`` is a scatter run, a wavelength (``500``) a
fluorescence run through that long-pass filter; ``Laser Wavelength nm:`` is the laser. The
settings that set the detection volume (sensitivity, shutter, gain, frame rate and cycles of
``Camera:``, minimum trace length, brightness and area limits) go to ``channel.settings``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments._build import computed_from_bins, disagrees, distribution, file_sha256
from exocheck.instruments._text import (
    decode,
    edges_from_centres,
    first_number,
    norm_key,
    parse_datetime,
    quantiles_from_bins,
    read_bytes,
    to_float,
)
from exocheck.instruments.channel import zetaview_channel
from exocheck.instruments.zetaview_positions import find_positions, read_positions_table
from exocheck.records import Concentration, Measurement, Source, TrackSummary

INSTRUMENT = "ZetaView"
_KEY_INLINE = re.compile(r"^([A-Za-z][^:\t]*?):+\s+(\S.*)$")


def parse_header(lines: list[str]) -> dict[str, list[str]]:
    """``Key:<TAB>value`` pairs of a ZetaView header; first occurrence of a key wins."""
    header: dict[str, list[str]] = {}
    for line in lines:
        key: str | None = None
        tokens = [t.strip() for t in line.split("\t") if t.strip()]
        for position, token in enumerate(tokens):
            inline = _KEY_INLINE.match(token) if position == 0 else None
            if token.endswith(":") and re.search(r"[A-Za-z]", token):
                key = norm_key(token)
                header.setdefault(key, [])
            elif inline:
                key = norm_key(inline.group(1))
                header.setdefault(key, []).append(inline.group(2).strip())
            elif key is not None and len(header[key]) < 8:
                header[key].append(token)
    return header


def _value(header: dict[str, list[str]], *names: str) -> str | None:
    for name in names:
        values = header.get(name)
        if values:
            return values[0]
    return None


def _number(header: dict[str, list[str]], *names: str) -> float | None:
    return first_number(_value(header, *names))


def _table(lines: list[str], path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres nm, number, concentration per mL) of the linear Size Distribution table."""
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if norm_key(line.split("\t")[0]).startswith("size / nm")
        ),
        None,
    )
    if start is None:
        raise FormatError(f"{path}: no 'Size / nm' table (is this a ZetaView size export?)")
    keys = [norm_key(c) for c in lines[start].split("\t")]
    try:
        n_col = next(i for i, k in enumerate(keys) if k.startswith("number"))
        c_col = next(i for i, k in enumerate(keys) if k.startswith("concentration"))
    except StopIteration:
        raise FormatError(
            f"{path}: Size Distribution table lacks a Number or Concentration column"
        ) from None
    rows: list[list[float | None]] = []
    for line in lines[start + 1 :]:
        cells = [to_float(c) for c in line.split("\t")]
        if not line.strip():
            if rows:
                break
            continue
        # the linear table ends at a separator row (-1 in the first four columns, 0 in the
        # last) before the log-spaced table: a negative centre ends it whatever follows
        if cells[0] is None or cells[0] < 0:
            break
        rows.append(cells)
    if not rows:
        return np.array([]), np.array([]), np.array([])
    width = max(n_col, c_col) + 1
    data = np.array([(r + [None] * width)[:width] for r in rows], dtype=float)
    data = np.nan_to_num(data, nan=0.0)
    centres = _instrument_grid(data[:, 0])
    if centres.size > 1 and np.any(np.diff(centres) <= 0):
        raise FormatError(f"{path}: Size Distribution bin centres are not increasing")
    return centres, data[:, n_col], data[:, c_col]


def _instrument_grid(printed: np.ndarray) -> np.ndarray:
    """The instrument's evenly spaced bin centres behind centres printed to 4 significant digits.

    ZetaView prints ``9.975E+2``, ``1.002E+3`` for 997.5, 1002.5 nm: the table's grid is
    first + width·i. When every printed centre agrees with that grid to the printed precision
    (half a unit in the 4th digit), the grid is used; otherwise the printed centres are kept.
    """
    n = printed.size
    if n < 3:
        return printed
    width = float(printed[1] - printed[0])
    if width <= 0:
        return printed
    grid = printed[0] + width * np.arange(n)  # the first centres are printed exactly
    tolerance = 0.5 * 10.0 ** (np.floor(np.log10(np.maximum(np.abs(grid), 1e-300))) - 3)
    if np.all(np.abs(printed - grid) <= tolerance * 1.0001 + 1e-9):
        return grid
    return printed


def _stated_stats(header: dict[str, list[str]]) -> dict[str, float | None]:
    """The X10/X50/X90, mean and peak the header states, when it states them."""
    found: dict[str, float | None] = {
        k: None for k in ("d10_nm", "d50_nm", "d90_nm", "mean_nm", "mode_nm", "sd_nm")
    }
    for key, values in header.items():
        if not values or re.search(r"volume|area|intensity|int\.|brightness", key):
            continue
        value = first_number(values[0])
        match = re.search(r"\b[xd]\s?(10|50|90)\b", key)
        if match:
            found.setdefault(f"d{match.group(1)}_nm", None)
            found[f"d{match.group(1)}_nm"] = found[f"d{match.group(1)}_nm"] or value
        elif key in ("mean", "mean size", "number mean", "mean (number)"):
            found["mean_nm"] = value
        elif key in ("peak", "peak size", "number peak", "mode"):
            found["mode_nm"] = value
        elif key in ("standard deviation", "sd", "number sd"):
            found["sd_nm"] = value
    return found


def read_zetaview(path: str | Path) -> Measurement:
    """Read a ZetaView size distribution ``.txt`` (and a sibling ``_11pos.txt`` if present).

    Raises
    ------
    FormatError
        Not a ZetaView size export, a zeta-potential profile, or a damaged table.
    """
    path = Path(path)
    lines = decode(read_bytes(path)).splitlines()
    cut = next(
        (
            i
            for i, line in enumerate(lines)
            if norm_key(line.split("\t")[0]).startswith(("size distribution", "size / nm"))
        ),
        len(lines),
    )
    header = parse_header(lines[:cut])
    kind = _value(header, "type of measurement") or ""
    if "profile" in kind.lower() or "zeta" in kind.lower():
        raise FormatError(
            f"{path}: a ZetaView zeta-potential '{kind}' file, not a size distribution; "
            "import the '_size_' .txt export"
        )
    if not any(
        k in header for k in ("number of traces", "zetaview s/n", "software", "original file")
    ):
        raise FormatError(f"{path}: not a ZetaView export (no 'Number of Traces' header)")
    centres, number, conc_bins = _table(lines, path)
    warnings: list[str] = []
    traces = _number(header, "number of traces")
    if traces is None and centres.size == 0:
        raise FormatError(f"{path}: neither 'Number of Traces' nor a size table is readable")
    measured = float(conc_bins.sum()) if centres.size else 0.0
    empty = (traces == 0) or number.sum() <= 0
    if empty:
        warnings.append("empty run: no particles traced (Number of Traces 0)")
    elif traces is not None and abs(number.sum() - traces) > max(1.0, 0.01 * traces):
        warnings.append(
            f"the size table holds {number.sum():g} traces, the header states {traces:g}"
        )

    dilution = _number(header, "dilution")
    if dilution is not None and dilution <= 0:
        dilution = None
    if dilution is None:
        warnings.append("dilution not recorded: concentration is as measured in the cell")
    stated = _stated_stats(header)
    if stated["d50_nm"] is None:
        stated["d50_nm"] = _number(header, "median number (d50)", "median number")
    computed: dict[str, float | None] = {}
    if centres.size and not empty:
        edges = edges_from_centres(centres)
        q = quantiles_from_bins(centres, number)
        size = distribution(edges, number, stated, q)
        computed = computed_from_bins(centres, number, q)
        if disagrees(stated["d50_nm"], computed["d50_nm"]):
            warnings.append(
                f"stated X50 {stated['d50_nm']:g} nm disagrees with the size table ({computed['d50_nm']:.4g} nm)"
            )
    else:
        size = distribution(np.array([]), np.array([]), stated, [None] * 3)

    files, sha = [path.name], {path.name: file_sha256(path)}
    per_video = []
    pos_path = find_positions(path)
    if pos_path is not None:
        table = read_positions_table(pos_path)
        per_video = table.positions
        warnings.extend(table.warnings)
        files.append(pos_path.name)
        sha[pos_path.name] = file_sha256(pos_path)

    temperature_how = [norm_key(v) for v in header.get("temperature", [])[1:]]
    if any(h in ("entered", "manual", "manually entered") for h in temperature_how):
        warnings.append(
            f"temperature {_value(header, 'temperature')} °C was entered by hand, not sensed"
        )
    remark_keys = [f"sample info {i}" for i in (1, 2, 3)]
    remark_keys += [f"sample remarks{i}" for i in (0, 1, 2)]  # older software versions
    remarks = [v for key in remark_keys if (v := _value(header, key))]
    software = _value(header, "software") or ""
    match = re.search(r"version\s*([^)\t]+)", software, re.IGNORECASE)
    date_text = " ".join(filter(None, [_value(header, "date"), _value(header, "time")]))
    settings = {k: (v[0] if len(v) == 1 else v) for k, v in header.items() if v}
    channel, channel_warnings = zetaview_channel(
        lambda key: _value(header, key), absent_is_scatter=True
    )
    warnings.extend(channel_warnings)
    summary = {
        "Number of Traces": traces,
        "Average Number of Particles": _number(header, "average number of particles"),
        "Dilution": dilution,
        "Concentration Correction Factor": _number(header, "concentration correction factor"),
        "Median Number (D50)": _number(header, "median number (d50)", "median number"),
        "stated": {k: v for k, v in stated.items() if v is not None},
        "from_distribution": {k: v for k, v in computed.items() if v is not None},
        "measured concentration (sum of table) per ml": measured,
        "Analyze": _value(header, "analyze"),
        # the instrument's serial; the measurement cell (a replaceable part) has its own
        "serial": _value(header, "zetaview s/n"),
        "cell serial": _value(header, "cell s/n"),
        "Sample remarks": remarks,
        "Positions": _value(header, "positions"),
    }
    particles_per_ml = measured * dilution if dilution else measured
    return Measurement(
        source=Source(
            instrument=INSTRUMENT,
            software_version=(match.group(1).strip() if match else software or None),
            file_sha256=sha[path.name],
            files=files,
        ),
        sample=_value(header, "sample"),
        date=parse_datetime(date_text),
        temperature_c=_number(header, "temperature"),
        viscosity_mpa_s=_number(header, "viscosity"),
        dilution_factor=dilution,
        size=size,
        concentration=Concentration(
            particles_per_ml=particles_per_ml,
            measured_per_ml=measured,
            dilution_factor=dilution,
            sd_per_ml=table.sd_per_ml if pos_path is not None else None,
        ),
        tracks=TrackSummary(count=int(traces or number.sum())),
        particles_per_frame=summary["Average Number of Particles"],
        per_video=per_video,
        channel=channel,
        instrument_summary=summary,
        settings=settings,
        warnings=warnings,
        provenance={"inputs": sha},
    )
