"""Malvern NanoSight NTA 3.x: ``<experiment>-ExperimentSummary.csv`` (+ companion ``.nano``).

The summary CSV is a sequence of bracketed sections (``[Experiment Details]``, ``[Results]``,
``[Size Data]``, ...) whose rows are ``key,value(s)``; one value column per video and, in the
result tables, ``Average,Standard Error`` after the video columns. Keys are matched by name,
case-insensitively; rows may be ragged.

Definitions (as the instrument states them): the concentration ``Average`` is the plain mean
over videos, failed videos (concentration 0) included, adjusted for the recorded dilution; the
merged distribution is the ``Concentration average`` column of 1-nm bins, and its D10/D50/D90
are read from the cumulative at the upper bin edge.

The channel: the real NTA 3.2/3.4 summaries seen state no filter (``Laser Type`` names the
laser, nothing says scatter or fluorescence), so the record's channel is None. A summary with
a filter row (``Filter``, ``Filter Wheel``, ``Optical Filter``, ...) or a ``Fluorescence``
row gets a channel: ``None`` / ``No filter`` / ``Scatter`` is scatter, a wavelength is
fluorescence through that filter.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments._build import computed_from_bins, disagrees, distribution, file_sha256
from exocheck.instruments._text import (
    decode,
    edges_from_centres,
    norm_key,
    parse_datetime,
    quantiles_from_bins,
    read_bytes,
    to_float,
)
from exocheck.instruments.channel import laser_from_text, parse_filter
from exocheck.instruments.nanofile import find_companion, read_nano
from exocheck.records import (
    Channel,
    Concentration,
    Measurement,
    Source,
    TrackSummary,
    VideoSummary,
)

INSTRUMENT = "NanoSight NTA"
_SECTION = re.compile(r"^\[(.+)\]$")
_STATS = {
    "mean": "mean_nm",
    "mode": "mode_nm",
    "sd": "sd_nm",
    "d10": "d10_nm",
    "d50": "d50_nm",
    "d90": "d90_nm",
}


@dataclass
class _Block:
    """One distribution block of ``[Size Data]`` / ``[Diffusion Coefficient Data]``."""

    weighting: str
    rows: list[list[str]] = field(default_factory=list)


def _rows(text: str, path: Path) -> list[list[str]]:
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        rows = []
        for row in reader:
            cells = [c.strip() for c in row]
            while cells and not cells[-1]:
                cells.pop()
            rows.append(cells)
        return rows
    except csv.Error as exc:
        raise FormatError(f"{path}: damaged CSV ({exc})") from None


def _sections(rows: list[list[str]]) -> dict[str, list[list[str]]]:
    """Rows by section. A section line is one whose *first* cell is ``[Name]``; it may carry
    more cells (``[Results],,,,,,Average,Standard Error,``: the column titles of the table sit
    on the section line itself), which become the section's first row, with an empty key."""
    sections: dict[str, list[list[str]]] = {"": []}
    current = ""
    for row in rows:
        match = _SECTION.match(row[0]) if row else None
        if match:
            current = norm_key(match.group(1))
            sections.setdefault(current, [])
            if any(row[1:]):
                sections[current].append(["", *row[1:]])
        else:
            sections[current].append(row)
    return sections


def _find(rows: list[list[str]], *names: str) -> list[str] | None:
    """The first row whose key equals or starts with one of ``names`` (normalised)."""
    for name in names:
        for row in rows:
            if row and norm_key(row[0]) == name:
                return row
    for name in names:
        for row in rows:
            if row and norm_key(row[0]).startswith(name):
                return row
    return None


def _cell(row: list[str] | None, index: int | None) -> str | None:
    if row is None or index is None or index >= len(row):
        return None
    return row[index] or None


class _Columns:
    """Video and Average columns of a result table, from its header row."""

    def __init__(self, header: list[str] | None, n_videos: int) -> None:
        keys = [norm_key(c) for c in header] if header else []
        self.average = keys.index("average") if "average" in keys else None
        self.stderr = keys.index("standard error") if "standard error" in keys else None
        last = self.average if self.average is not None else max(len(keys), n_videos + 1)
        self.videos = list(range(1, last)) if last > 1 else []
        self.names = [
            header[i] if header and i < len(header) else f"video {i}" for i in self.videos
        ]

    def values(self, row: list[str] | None) -> list[float | None]:
        return [to_float(_cell(row, i)) for i in self.videos]

    def average_of(self, row: list[str] | None) -> float | None:
        stated = to_float(_cell(row, self.average))
        if stated is not None:
            return stated
        vals = [v for v in self.values(row) if v is not None]
        return float(np.mean(vals)) if vals else None


def _blocks(rows: list[list[str]]) -> list[_Block]:
    blocks: list[_Block] = []
    for row in rows:
        if row and norm_key(row[0]) == "weighting":
            blocks.append(_Block(weighting=norm_key(row[1]) if len(row) > 1 else ""))
        elif blocks:
            blocks[-1].rows.append(row)
    return blocks


def _graph(block: _Block) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    """(bin centres, per-video values, stated average or None) from a block's Graph Data."""
    start = next(
        (i for i, r in enumerate(block.rows) if r and norm_key(r[0]).startswith("bin centre")), None
    )
    if start is None:
        return np.array([]), [], None
    keys = [norm_key(c) for c in block.rows[start]]
    avg_col = next((i for i, k in enumerate(keys) if k.startswith("concentration average")), None)
    video_cols = [
        i
        for i, k in enumerate(keys)
        if i != avg_col and "conc" in k and not k.startswith("concentration average")
    ]
    centres, per_video, average = [], [[] for _ in video_cols], []
    for row in block.rows[start + 1 :]:
        centre = to_float(row[0]) if row else None
        if centre is None:
            break
        centres.append(centre)
        for values, col in zip(per_video, video_cols, strict=True):
            values.append(to_float(_cell(row, col)) or 0.0)
        if avg_col is not None:
            average.append(to_float(_cell(row, avg_col)) or 0.0)
    stated_avg = np.array(average) if avg_col is not None else None
    return np.array(centres), [np.array(v) for v in per_video], stated_avg


def _check_bins(centres: np.ndarray, path: Path) -> None:
    if centres.size < 2 or np.any(np.diff(centres) <= 0):
        raise FormatError(f"{path}: [Size Data] bin centres are not increasing")


#: Flag values that mean "nothing to report" in [Concentration Warnings] / [Information].
_FINE = frozenset({"", "ok", "no", "none", "valid", "n/a", "na", "-"})
#: Informational rows: their values are settings, not problems.
_INFORMATIONAL = ("vibration correction applied",)


def _flags(sections: dict[str, list[list[str]]], names: list[str]) -> tuple[dict, list[str]]:
    """Per-video flags of ``[Concentration Warnings]`` / ``[Information]`` and one warning per
    (row, value) naming the videos it applies to (the same row label may occur in both
    sections with different vocabularies; identical flags are reported once)."""
    flags: dict[str, list[str]] = {}
    grouped: dict[tuple[str, str], list[str]] = {}
    for section in ("concentration warnings", "information"):
        for row in sections.get(section, []):
            if len(row) < 2 or not row[0]:
                continue
            key, values = row[0].rstrip(":"), row[1:]
            flags.setdefault(key, values)
            k = norm_key(key)
            if k in _INFORMATIONAL:
                continue
            for i, value in enumerate(values[: len(names)] if names else values):
                v = norm_key(value)
                if v in _FINE or ("settings changed" in k and v in ("no", "false")):
                    continue
                who = names[i] if i < len(names) else f"video {i + 1}"
                videos = grouped.setdefault((key, value), [])
                if who not in videos:
                    videos.append(who)
    warnings = [
        f"{key} = {value}: {_video_list(videos, len(names))}"
        for (key, value), videos in grouped.items()
    ]
    return flags, warnings


def _video_list(videos: list[str], total: int) -> str:
    """``a, b`` or ``3 of 36 videos (a, b, c)``; long lists are shortened."""
    shown = ", ".join(videos[:8]) + (f", ... ({len(videos) - 8} more)" if len(videos) > 8 else "")
    if len(videos) == 1:
        return shown
    return f"{len(videos)} of {total} videos ({shown})" if total else shown


_FILTER_ROW = re.compile(
    r"^(optical |emission |fluorescence |fl )?filter( wheel| type| position| name| used)?"
    r"( ?/ ?nm| \(nm\))?$"
)
_FLUORESCENCE_ROW = re.compile(r"^(fluorescence|fl)( mode| measurement| capture)?\??$")
#: Summary rows that set the detection volume -> channel settings names.
_DETECTION_ROWS = {
    "camera type": "camera",
    "camera level": "camera_level",
    "slider shutter": "slider_shutter",
    "slider gain": "slider_gain",
    "shutter/ms": "shutter_ms",
    "frame rate/fps": "fps",
    "detection threshold": "detection_threshold",
    "min track length": "min_track_length",
}


def _per_video(row: list[str], n_videos: int) -> list[str]:
    """The per-video cells of a row (one per video; empty where the video states nothing)."""
    if not n_videos:
        return [c for c in row[1:] if c]
    return [row[i] if i < len(row) else "" for i in range(1, n_videos + 1)]


def _channel(
    rows: list[list[str]], n_videos: int, names: list[str]
) -> tuple[Channel | None, list[str]]:
    """The channel the summary states (a filter or fluorescence row), and warnings; None when
    it states none. Videos recorded through different filters give None and a warning."""
    stated: list[tuple[str, float | None, str] | None] = []
    for row in rows:
        key = norm_key(row[0]) if row else ""
        if _FILTER_ROW.match(key):
            stated = [parse_filter(v) for v in _per_video(row, n_videos)]
        elif _FLUORESCENCE_ROW.match(key):
            stated = []
            for v in _per_video(row, n_videos):
                word = norm_key(v)
                if word in ("yes", "on", "true", "1", "fluorescence"):
                    stated.append(("fluorescence", None, v))
                elif word in ("no", "off", "false", "0", "scatter"):
                    stated.append(("scatter", None, v))
                else:
                    stated.append(parse_filter(v))
        else:
            continue
        if any(s is not None for s in stated):
            break
    stated_known = [s for s in stated if s is not None]
    if not stated_known:
        return None, []
    kinds = {(s[0], s[1]) for s in stated_known}
    if len(kinds) > 1:
        groups: dict[str, list[str]] = {}
        for i, s in enumerate(stated):
            if s is not None:
                label = s[0] if s[1] is None else f"{s[0]} {s[1]:g} nm"
                groups.setdefault(label, []).append(names[i] if i < len(names) else str(i + 1))
        return None, [
            "videos recorded in different channels ("
            + "; ".join(f"{label}: {', '.join(videos)}" for label, videos in groups.items())
            + "): no one channel for the measurement"
        ]
    mode, wavelength, text = stated_known[0]
    settings: dict[str, object] = {}
    laser = None
    for row in rows:
        key = norm_key(row[0]) if row else ""
        values = [v for v in _per_video(row, n_videos) if v] if row else []
        if not values:
            continue
        if key == "laser type" and laser is None:
            laser = laser_from_text(values[0])
        name = _DETECTION_ROWS.get(key)
        if name is None or name in settings:
            continue
        parsed: list[object] = [to_float(v) if to_float(v) is not None else v for v in values]
        settings[name] = parsed[0] if all(p == parsed[0] for p in parsed) else parsed
    return (
        Channel(
            mode=mode,  # type: ignore[arg-type]
            laser_wavelength_nm=laser,
            filter_wavelength_nm=wavelength,
            filter_name=text,
            settings=dict(sorted(settings.items())),
        ),
        [],
    )


def read_nanosight(path: str | Path) -> Measurement:
    """Read a NanoSight NTA 3.x ``ExperimentSummary.csv`` (and its ``.nano`` if beside it).

    Raises
    ------
    FormatError
        The file is not an NTA experiment summary, or lacks the concentration or the
        number-weighted size statistics.
    """
    path = Path(path)
    text = decode(read_bytes(path))
    rows = _rows(text, path)
    head = " ".join(" ".join(r) for r in rows[:3]).lower()
    sections = _sections(rows)
    if "nta experiment summary" not in head and "results" not in sections:
        raise FormatError(f"{path}: not a NanoSight ExperimentSummary.csv (no NTA header)")
    details = sections.get("experiment details", [])
    conditions = sections.get("conditions", []) + details
    results = sections.get("results", [])
    warnings: list[str] = []

    file_row = _find(details, "filename")
    video_names = [c for c in (file_row or [])[1:] if c]
    header = next((r for r in results if "average" in [norm_key(c) for c in r]), None)
    cols = _Columns(header, len(video_names))
    if video_names and len(video_names) == len(cols.videos):
        cols.names = video_names

    conc_row = _find(results, "concentration (particles / ml)", "concentration (particles")
    particles_per_ml = cols.average_of(conc_row)
    if particles_per_ml is None:
        raise FormatError(f"{path}: no 'Concentration (Particles / ml)' value in [Results]")
    video_conc = cols.values(conc_row)

    dil_row = _find(results, "dilution factor")
    dilution = cols.average_of(dil_row)
    if dilution is not None and dilution <= 0:
        dilution = None
    if dilution is None:
        warnings.append("dilution not recorded: concentration is as measured in the cell")

    # number-weighted size block
    blocks = _blocks(sections.get("size data", []))
    number = next((b for b in blocks if b.weighting.startswith("number")), None)
    if number is None:
        raise FormatError(f"{path}: no number-weighted block in [Size Data]")
    size_cols = _Columns(_find(number.rows, "filename"), len(cols.videos))
    stated = {_STATS[k]: size_cols.average_of(_find(number.rows, k)) for k in _STATS}
    if stated["d50_nm"] is None and stated["mean_nm"] is None:
        raise FormatError(f"{path}: [Size Data] states neither Mean nor D50 (number-weighted)")
    centres, per_video_bins, stated_avg = _graph(number)
    disagreements: list[str] = []
    if centres.size:
        _check_bins(centres, path)
        if stated_avg is None:
            if not per_video_bins:
                raise FormatError(f"{path}: [Size Data] graph has no concentration columns")
            stated_avg = np.mean(per_video_bins, axis=0)
        edges = edges_from_centres(centres)
        q = quantiles_from_bins(edges[1:], stated_avg, start=float(edges[0]))
        size = distribution(edges, stated_avg, stated, q)
        recomputed = computed_from_bins(centres, stated_avg, q)
        for key in ("d50_nm", "mean_nm"):
            if disagrees(stated[key], recomputed[key]):
                disagreements.append(
                    f"stated {key} {stated[key]:g} disagrees with the distribution ({recomputed[key]:.4g})"
                )
    else:
        size = distribution(np.array([]), np.array([]), stated, [None, None, None])
        recomputed = {}
        warnings.append("no size distribution (Graph Data) in the file: statistics only")

    # per-video values
    ppf = cols.values(_find(results, "particles per frame"))
    tracks_row = cols.values(_find(results, "completed tracks"))
    valid_tracks = size_cols.values(_find(number.rows, "valid tracks"))
    video_stats = {k: size_cols.values(_find(number.rows, k)) for k in _STATS}
    per_video: list[VideoSummary] = []
    failed_names: list[str] = []
    unsized_names: list[str] = []
    for i, name in enumerate(cols.names):
        conc = video_conc[i] if i < len(video_conc) else None
        failed = conc is None or conc <= 0
        valid_n = valid_tracks[i] if i < len(valid_tracks) else None
        tracks = (
            valid_n if valid_n is not None else (tracks_row[i] if i < len(tracks_row) else None)
        )
        stat = {k: (v[i] if i < len(v) else None) for k, v in video_stats.items()}
        # a video without valid tracks states its size statistics as 0: not sizes
        stated_stats = [v for v in stat.values() if v is not None]
        unsized = not failed and (
            valid_n == 0 or (bool(stated_stats) and all(v == 0 for v in stated_stats))
        )
        if failed or unsized:
            stat = dict.fromkeys(stat)
        note = None
        if failed:
            note = "failed video: concentration 0 (included in the stated average)"
            failed_names.append(name)
        elif unsized:
            note = "no valid tracks: size statistics stated as 0"
            unsized_names.append(name)
        per_video.append(
            VideoSummary(
                name=name,
                concentration_per_ml=conc,
                particles_per_frame=ppf[i] if i < len(ppf) else None,
                tracks=int(tracks) if tracks is not None else None,
                d10_nm=stat["d10"],
                d50_nm=stat["d50"],
                d90_nm=stat["d90"],
                mean_nm=stat["mean"],
                mode_nm=stat["mode"],
                sd_nm=stat["sd"],
                valid=not (failed or unsized),
                note=note,
            )
        )
    valid_average: dict[str, float | None] = {}
    if failed_names or unsized_names:
        sized = [v for v in per_video if v.valid]
        counted = [
            v.concentration_per_ml
            for v in per_video
            if v.name not in failed_names and v.concentration_per_ml
        ]
        valid_average = {
            "videos": len(sized),
            "concentration_per_ml": float(np.mean(counted)) if counted else None,
        }
        for key in ("mean_nm", "mode_nm", "sd_nm", "d10_nm", "d50_nm", "d90_nm"):
            values = [getattr(v, key) for v in sized if getattr(v, key) is not None]
            valid_average[key] = float(np.mean(values)) if values else None
    if failed_names:
        beside = valid_average.get("concentration_per_ml")
        warnings.append(
            f"failed videos (concentration 0): {_video_list(failed_names, len(cols.names))}; "
            f"the stated average {particles_per_ml:.3g}/mL includes them"
            + (
                f", the average of the {len(cols.names) - len(failed_names)} others is "
                f"{beside:.3g}/mL"
                if beside is not None
                else ""
            )
        )
    if unsized_names:
        warnings.append(
            "no valid tracks (size statistics stated as 0, included in the stated size "
            f"averages): {_video_list(unsized_names, len(cols.names))}"
        )
    if valid_average.get("mean_nm") is not None and (failed_names or unsized_names):
        warnings.append(
            "stated size averages include the zeros of videos without sizes; over the "
            f"{valid_average['videos']} sized videos: mean {valid_average['mean_nm']:.1f} nm, "
            f"D50 {valid_average['d50_nm']:.1f} nm"
        )
    if not (failed_names or unsized_names):  # else the stated averages include zeros
        warnings.extend(disagreements)
    if per_video and not any(v.valid for v in per_video):
        # every statistic is stated as 0: no size was measured (the stated values stay in
        # instrument_summary)
        size = size.model_copy(update=dict.fromkeys(_STATS.values()))
        warnings.append(
            "empty measurement: no video has sized particles; the stated size statistics (0) "
            "are not sizes and are left out"
        )
    flags, flag_warnings = _flags(sections, cols.names)
    warnings.extend(flag_warnings)
    channel, channel_warnings = _channel(
        sections.get("conditions", []) + sections.get("settings", []) + details,
        len(cols.names),
        cols.names,
    )
    warnings.extend(channel_warnings)

    temps = [v for v in cols.values(_find(conditions, "temperature")) if v is not None]
    visc = [v for v in cols.values(_find(conditions, "viscosity")) if v is not None]
    version_row = _find(details, "software version")
    version = _cell(version_row, 1)
    if version is None or norm_key(version) in ("unknown", "n/a"):
        # combined experiments state "Unknown": line 2 says what wrote the file
        created = next(
            (r[0] for r in rows[:3] if r and r[0].lower().startswith("created with")), ""
        )
        match = re.search(r"NTA\s*[\d.]+.*", created, re.IGNORECASE)
        version = match.group(0).strip() if match else version
    sample = _cell(_find(details, "sample description"), 1) or _cell(
        _find(details, "experiment name"), 1
    )
    date = parse_datetime(_cell(_find(details, "time captured"), 1))
    settings = {
        row[0].rstrip(":"): (row[1] if len(row) == 2 else row[1:])
        for row in sections.get("settings", [])
        if len(row) >= 2
    }
    files = [path.name]
    sha = {path.name: file_sha256(path)}

    nano_path = find_companion(path)
    if nano_path is not None:
        nano = read_nano(nano_path)
        files.append(nano_path.name)
        sha[nano_path.name] = file_sha256(nano_path)
        settings["nano"] = nano.capture
        sample = sample or nano.details.get("samplename")
        date = date or parse_datetime(nano.details.get("timecaptured"))
        temps = temps or nano.numbers("temperature")
        visc = visc or nano.numbers("viscosity")
        nano_dil = nano.numbers("dilutionfactor")
        if (
            nano_dil
            and dilution is not None
            and not math.isclose(nano_dil[0], dilution, rel_tol=1e-3)
        ):
            warnings.append(
                f".nano dilution {nano_dil[0]:g} differs from the summary's {dilution:g}"
            )

    se = to_float(_cell(conc_row, cols.stderr))
    finite = [v for v in video_conc if v is not None and v > 0]  # SD over the videos that counted
    summary = {
        "Concentration (Particles / ml)": {"Average": particles_per_ml, "Standard Error": se},
        "Dilution factor": _cell(dil_row, cols.average) or _cell(dil_row, 1),
        "Particles per frame": cols.average_of(_find(results, "particles per frame")),
        "Completed tracks": cols.average_of(_find(results, "completed tracks")),
        "Size (number)": {k: v for k, v in stated.items() if v is not None},
        "Size (number) Standard Error": {
            key: se
            for k, key in _STATS.items()
            if (se := to_float(_cell(_find(number.rows, k), size_cols.stderr))) is not None
        },
        "Valid Tracks": size_cols.average_of(_find(number.rows, "valid tracks")),
        "from_distribution": {k: v for k, v in recomputed.items() if v is not None},
        "average of valid videos": valid_average or None,
        "flags": flags,
        "Operator Name": _cell(_find(details, "operator name"), 1),
        "Diluent": _cell(_find(details, "diluent"), 1),
        "Experiment Name": _cell(_find(details, "experiment name"), 1),
    }
    total_tracks = [v for v in valid_tracks if v is not None] or [
        v for v in tracks_row if v is not None
    ]
    return Measurement(
        source=Source(
            instrument=INSTRUMENT, software_version=version, file_sha256=sha[path.name], files=files
        ),
        sample=sample,
        date=date,
        temperature_c=float(np.mean(temps)) if temps else None,
        viscosity_mpa_s=float(np.mean(visc)) if visc else None,
        dilution_factor=dilution,
        size=size,
        concentration=Concentration(
            particles_per_ml=particles_per_ml,
            measured_per_ml=particles_per_ml / dilution if dilution else particles_per_ml,
            dilution_factor=dilution,
            sd_per_ml=float(np.std(finite, ddof=1)) if len(finite) > 1 else None,
        ),
        tracks=TrackSummary(count=int(sum(total_tracks))),
        particles_per_frame=summary["Particles per frame"],
        per_video=per_video,
        channel=channel,
        instrument_summary=summary,
        settings=settings,
        warnings=warnings,
        provenance={"inputs": sha},
    )
