"""What a batch analyses: samples, their replicate videos and their settings.

A sample is one result: the replicate videos of one sample are analysed together, as
``exocheck analyze`` does. Samples come from videos named on the command line (one sample per
video, named after the file's stem) or from a manifest, a CSV file with one row per video:

=====================  =========================================================================
column                 meaning
=====================  =========================================================================
``sample``             sample name (required): also the name of its output folder ``DIR/<sample>``
``video``              video file (required), relative to the manifest's folder unless absolute
``fps``                frame rate (against the file's own: only with an override reason)
``pixel_size_um``      pixel size in µm (likewise)
``temperature_c``      sample temperature, °C (default 25)
``exposure_ms``        exposure per frame, ms
``viscosity_mpa_s``    medium viscosity, mPa·s (default: water at the temperature)
``refractive_index``   particle refractive index (detection limit, Mie-scaled volumes)
``dilution_factor``    dilution before measurement (≥ 1)
``calibration``        calibration JSON from ``exocheck calibrate``, relative like ``video``
=====================  =========================================================================

Every other acquisition condition of :class:`exocheck.nta.analyze.Conditions` is accepted as a
column of the same name. An empty cell takes the value given on the command line, else the
default. Rows of one sample must agree on every setting. Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from exocheck.errors import ExocheckError, FormatError, ParameterError

REQUIRED = ("sample", "video")
SAMPLE_SETTINGS = ("dilution_factor", "calibration")
MAX_SAMPLE_CHARS = 200


@dataclass(frozen=True)
class SampleSpec:
    """One sample of a batch: its name, replicate videos and settings.

    ``conditions`` is an :class:`exocheck.nta.analyze.Conditions`. A sample analysed under a
    method (:func:`exocheck.methods.methods.for_samples`) carries the method's analysis
    ``settings``, the ``stamp`` its record gets (with the ``notes`` for its warnings), the
    calibration itself (``stored_calibration``, a stored one) and the ``override`` reason for
    values given against the file or the method.
    """

    sample: str
    videos: tuple[Path, ...]
    conditions: Any
    dilution_factor: float | None = None
    calibration: Path | None = None
    settings: Any = None
    stamp: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    stored_calibration: Any = None
    override: str | None = None


def condition_columns() -> tuple[str, ...]:
    """The acquisition conditions a manifest may set (the fields of ``Conditions``)."""
    from exocheck.nta.analyze import Conditions

    return tuple(f.name for f in fields(Conditions))


def check_sample_name(name: str, where: str = "") -> str:
    """A sample name that can name a folder: not empty, no path separator, not hidden."""
    prefix = f"{where}: " if where else ""
    name = name.strip()
    if not name:
        raise FormatError(f"{prefix}empty sample name")
    if "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise FormatError(
            f"{prefix}sample name {name!r} cannot name a folder (no '/', '\\' or leading '.')"
        )
    if len(name) > MAX_SAMPLE_CHARS:
        raise FormatError(f"{prefix}sample name longer than {MAX_SAMPLE_CHARS} characters")
    return name


def samples_from_videos(
    videos: list[Path], conditions: Any, **sample_settings: Any
) -> list[SampleSpec]:
    """One sample per video, named after its file stem, all with the same settings."""
    if not videos:
        raise ParameterError("no video given (name videos or folders, or pass --manifest)")
    seen: dict[Path, Path] = {}
    names: dict[str, Path] = {}
    samples = []
    for video in videos:
        key = video.expanduser().resolve()
        if key in seen:
            raise ParameterError(f"duplicate entry: video {video} is given twice")
        seen[key] = video
        name = check_sample_name(video.stem, str(video))
        if name in names:
            raise ParameterError(
                f"duplicate entry: {names[name]} and {video} would both be sample {name!r} "
                "(use a manifest to name the samples)"
            )
        names[name] = video
        samples.append(SampleSpec(name, (video,), conditions, **sample_settings))
    return samples


VIDEO_SUFFIXES = (".tif", ".tiff", ".avi", ".mp4", ".mov", ".mkv", ".nd2")


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Videos named, with folders replaced by the video files they hold (sorted by name).

    A folder holding no video files is taken as one video (a folder of frames).
    """
    videos: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
            videos.extend(inside or [path])
        else:
            videos.append(path)
    return videos


def _number(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise FormatError(f"{where}: {column} {text!r} is not a finite number")
    return value


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise FormatError(f"manifest {path}: is a folder, not a CSV file") from None
    except OSError as exc:
        raise FormatError(f"manifest {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"manifest {path}: not a UTF-8 CSV text file") from None


def read_manifest(
    path: str | Path, defaults: Any = None, **sample_defaults: Any
) -> list[SampleSpec]:
    """The samples of a manifest CSV file (columns in the module docstring).

    ``defaults`` (a ``Conditions``) gives the value of every empty or absent condition;
    ``sample_defaults`` may give ``dilution_factor`` and ``calibration`` likewise. Raises
    :class:`~exocheck.errors.FormatError` (with the line) for a missing column, an unknown
    column, a bad value, a duplicate entry or replicates that disagree.
    """
    from exocheck.nta.analyze import Conditions

    path = Path(path)
    defaults = defaults if defaults is not None else Conditions()
    text = _read_text(path)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    if not any(line.strip() for line in lines):
        raise FormatError(f"manifest {path}: empty (a header line with sample,video is needed)")
    try:
        reader = csv.DictReader(io.StringIO("\n".join(lines)), skipinitialspace=True)
        header = [h.strip() for h in reader.fieldnames or []]
        rows = list(reader)
    except csv.Error as exc:
        raise FormatError(f"manifest {path}: not a readable CSV file ({exc})") from None
    conditions = condition_columns()
    known = (*REQUIRED, *conditions, *SAMPLE_SETTINGS)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise FormatError(
            f"manifest {path}: missing column {', '.join(missing)} "
            f"(found: {', '.join(h for h in header if h) or 'none'})"
        )
    unknown = [h for h in header if h not in known]
    if unknown:
        raise FormatError(
            f"manifest {path}: unknown column {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(known)})"
        )
    doubled = sorted({h for h in header if header.count(h) > 1})
    if doubled:
        raise FormatError(f"manifest {path}: column {', '.join(doubled)} appears twice")
    base = path.parent
    line_of = _line_numbers(text)
    order: list[str] = []
    by_sample: dict[str, dict[str, Any]] = {}
    entries: dict[tuple[str, Path], int] = {}
    for index, raw in enumerate(rows):
        line = line_of[index] if index < len(line_of) else index + 2
        where = f"manifest {path} line {line}"
        if None in raw:
            raise FormatError(f"{where}: more cells than columns")
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        sample = check_sample_name(row.get("sample", ""), where)
        if not row.get("video"):
            raise FormatError(f"{where}: no video for sample {sample!r}")
        video = Path(row["video"]).expanduser()
        video = video if video.is_absolute() else base / video
        key = (sample, video.resolve())
        if key in entries:
            raise FormatError(
                f"{where}: duplicate entry: sample {sample!r}, video {row['video']} "
                f"(already on line {entries[key]})"
            )
        entries[key] = line
        values: dict[str, Any] = {}
        for column in conditions:
            cell = row.get(column, "")
            if cell:
                values[column] = _number(cell, column, where)
        try:
            cond = replace(defaults, **values)
        except ExocheckError as exc:
            raise FormatError(f"{where}: {exc}") from None
        dilution = sample_defaults.get("dilution_factor")
        if row.get("dilution_factor"):
            dilution = _number(row["dilution_factor"], "dilution_factor", where)
            if dilution < 1.0:
                raise FormatError(f"{where}: dilution_factor must be >= 1, got {dilution:g}")
        calibration = sample_defaults.get("calibration")
        if row.get("calibration"):
            calibration = Path(row["calibration"]).expanduser()
            calibration = calibration if calibration.is_absolute() else base / calibration
        settings = {"conditions": cond, "dilution_factor": dilution, "calibration": calibration}
        if sample not in by_sample:
            order.append(sample)
            by_sample[sample] = {"settings": settings, "videos": [video], "line": line}
            continue
        first = by_sample[sample]
        if settings != first["settings"]:
            raise FormatError(
                f"{where}: sample {sample!r} has other settings than on line {first['line']} "
                "(replicates of one sample share their settings)"
            )
        first["videos"].append(video)
    if not order:
        raise FormatError(f"manifest {path}: no rows (one row per video is needed)")
    return [
        SampleSpec(
            sample=name,
            videos=tuple(by_sample[name]["videos"]),
            conditions=by_sample[name]["settings"]["conditions"],
            dilution_factor=by_sample[name]["settings"]["dilution_factor"],
            calibration=by_sample[name]["settings"]["calibration"],
        )
        for name in order
    ]


def _line_numbers(text: str) -> list[int]:
    """File line number of each data row (comments skipped, header excluded)."""
    numbers = []
    header_seen = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#") or not line.strip():
            continue  # comments, and blank lines (which the CSV reader skips)
        if not header_seen:
            if line.strip():
                header_seen = True
            continue
        numbers.append(number)
    return numbers
