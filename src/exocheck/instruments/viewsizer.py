"""HORIBA ViewSizer 3000: a result folder per sample.

The folder holds ``<sample>_<YYYYMMDD_HHMMSS>.xml`` (recording and processing settings, sample
information, metadata; a folder may also hold a numbered settings XML and a temperature log) and
``Results_<sample>_<timestamp>/`` or a plain ``Results/`` with tab-separated ``.dat`` tables
(header lines start with ``/``): particle size distributions in several binnings and
``Videos_*.dat`` with per-video counts and sizes.

Definitions: the concentration of the original sample is Σ(PSD_corrected × bin width), which
the instrument derives as particles ÷ (videos × volume per video) × dilution. The instrument
states no D-values in these files: exocheck computes them from the finest constant-width
table (cumulative at the upper bin edge) and says so in ``instrument_summary``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments._build import distribution, file_sha256
from exocheck.instruments._text import (
    decode,
    first_number,
    norm_key,
    parse_datetime,
    quantiles_from_bins,
    read_bytes,
    to_float,
)
from exocheck.records import Concentration, Measurement, Source, TrackSummary, VideoSummary

INSTRUMENT = "ViewSizer 3000"


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _find(root: ET.Element, *path: str) -> ET.Element | None:
    """The first element at a path of local names (case-insensitive), searched anywhere."""
    for element in root.iter():
        if _local(element.tag) != path[0].lower():
            continue
        node: ET.Element | None = element
        for name in path[1:]:
            node = (
                next((c for c in node if _local(c.tag) == name.lower()), None)
                if node is not None
                else None
            )
        if node is not None:
            return node
    return None


def _text(root: ET.Element, *path: str) -> str | None:
    element = _find(root, *path)
    text = element.text.strip() if element is not None and element.text else ""
    return text or None


def is_viewsizer_xml(data: bytes) -> bool:
    """True when bytes look like a ViewSizer settings XML."""
    head = decode(data[:65536]).lower()
    return (
        head.lstrip().startswith("<")
        and "recordingsettings" in head
        and ("sampleinformation" in head or "viewsizer" in head)
    )


def _is_results_folder(path: Path) -> bool:
    name = path.name.lower()
    return name == "results" or name.startswith("results_")


def _settings_xml(folder: Path) -> Path | None:
    """The settings XML of a sample folder, among possibly several XML files.

    A folder may hold a numbered ``<sample>_0001.xml``, a dated ``<sample>_<timestamp>.xml``
    and a ``<sample>_Temperature_<timestamp>.xml`` log: the settings XML is one that holds
    ``RecordingSettings``; a dated one is preferred, then the most recently named.
    """
    xml_files = sorted((p for p in folder.glob("*.xml") if p.is_file()), key=lambda p: p.name)
    candidates = [
        p for p in xml_files
        if "temperature" not in p.stem.lower() and is_viewsizer_xml(read_bytes(p))
    ]  # fmt: skip
    candidates = candidates or [p for p in xml_files if is_viewsizer_xml(read_bytes(p))]
    if not candidates:
        return None
    dated = [p for p in candidates if re.search(r"\d{8}_\d{6}", p.stem)]
    return (dated or candidates)[-1]


def locate(path: Path) -> tuple[Path, Path | None]:
    """(settings XML, results folder or None) for a result folder, its XML or its results folder.

    The results folder is ``Results_<sample>_<timestamp>/`` or a plain ``Results/``; with
    several, the one whose timestamp matches the settings XML's is taken.
    """
    if path.is_file():
        folder, xml = path.parent, path
        if not is_viewsizer_xml(read_bytes(path)):
            raise FormatError(f"{path}: not a ViewSizer settings .xml (no RecordingSettings)")
    else:
        folder = path.parent if _is_results_folder(path) else path
        xml = _settings_xml(folder)
        if xml is None and path is not folder:
            xml = _settings_xml(path)
    if xml is None:
        raise FormatError(f"{path}: no ViewSizer settings .xml (with RecordingSettings) found")
    if path.is_dir() and _is_results_folder(path):
        return xml, path
    results = sorted(p for p in folder.iterdir() if p.is_dir() and _is_results_folder(p))
    stamp = re.search(r"\d{8}_\d{6}", xml.stem)
    match = next((p for p in results if stamp and stamp.group(0) in p.name), None)
    with_tables = [p for p in results if any(p.glob("*.dat"))]
    return xml, match or (with_tables[0] if with_tables else (results[0] if results else None))


@dataclass
class _Table:
    path: Path
    lower: np.ndarray
    upper: np.ndarray
    counts: np.ndarray | None
    psd: np.ndarray


def _read_psd(path: Path) -> _Table | None:
    """A binned PSD table, or None when the .dat is some other table."""
    columns: list[str] = []
    rows: list[list[float | None]] = []
    for line in decode(read_bytes(path)).splitlines():
        if line.startswith("/"):
            if "centerbindiameter" in line.lower():
                columns = [norm_key(c.lstrip("/")) for c in line.split("\t")]
            continue
        if columns and line.strip():
            rows.append([to_float(c) for c in line.split("\t")])
    if not columns or not rows:
        return None

    def col(prefix: str) -> int | None:
        return next((i for i, c in enumerate(columns) if c.startswith(prefix)), None)

    lo, up, psd = col("lowerbindiameter"), col("upperbindiameter"), col("psd_corrected_[")
    psd = psd if psd is not None else col("psd_corrected")
    cnt = col("totalparticlescounted")
    if lo is None or up is None or psd is None:
        return None
    width = len(columns)
    data = np.array([(r + [None] * width)[:width] for r in rows], dtype=float)
    data = data[np.isfinite(data[:, lo]) & np.isfinite(data[:, up])]
    if (
        data.shape[0] == 0
        or np.any(data[:, up] <= data[:, lo])
        or np.any(np.diff(data[:, lo]) <= 0)
    ):
        return None
    counts = np.nan_to_num(data[:, cnt]) if cnt is not None else None
    return _Table(
        path, data[:, lo], data[:, up], counts, np.clip(np.nan_to_num(data[:, psd]), 0, None)
    )


def _pick(tables: list[_Table]) -> _Table | None:
    """The finest constant-width table (1 nm when present), else the one with most bins."""
    constant = []
    for t in tables:
        w = t.upper - t.lower
        if np.allclose(w, w[0], rtol=1e-3) and np.allclose(
            t.lower[1:], t.upper[:-1], atol=1e-6 * w[0]
        ):
            constant.append((float(w[0]), t))
    if constant:
        return min(constant, key=lambda item: item[0])[1]
    return max(tables, key=lambda t: t.lower.size) if tables else None


@dataclass
class _Videos:
    count: int | None = None
    rows: list[tuple[int, int, float | None, float | None]] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)


def _read_videos(path: Path) -> _Videos:
    videos = _Videos()
    for line in decode(read_bytes(path)).splitlines():
        if line.startswith("/"):
            if "number of videos" in line.lower():
                number = first_number(line.split(":", 1)[-1])
                videos.count = int(number) if number is not None else None
            continue
        cells = (
            [c for c in line.replace(",", "\t").split("\t") if c.strip()]
            if "\t" in line
            else line.split()
        )
        if len(cells) >= 3 and to_float(cells[0]) is not None and to_float(cells[1]) is not None:
            avg, sd = to_float(cells[2]), to_float(cells[3]) if len(cells) > 3 else None
            videos.rows.append(
                (int(to_float(cells[0]) or 0), int(to_float(cells[1]) or 0), avg, sd)
            )
        else:
            videos.sizes.extend(v for v in (to_float(c) for c in cells) if v is not None and v > 0)
    return videos


def _as_dict(element: ET.Element) -> object:
    """An element as nested dicts (repeated children become lists)."""
    children = list(element)
    if not children:
        return (element.text or "").strip()
    result: dict[str, object] = {}
    for child in children:
        key, value = _local(child.tag), _as_dict(child)
        if key not in result:
            result[key] = value
        elif isinstance(result[key], list):
            result[key].append(value)  # type: ignore[union-attr]
        else:
            result[key] = [result[key], value]
    return result


def read_viewsizer(path: str | Path) -> Measurement:
    """Read a ViewSizer 3000 result folder (or its settings XML).

    Raises
    ------
    FormatError
        No settings XML, a damaged XML, or no readable PSD table.
    """
    path = Path(path)
    xml_path, results = locate(path)
    try:
        root = ET.fromstring(decode(read_bytes(xml_path)).lstrip())
    except ET.ParseError as exc:
        raise FormatError(f"{xml_path}: damaged XML ({exc})") from None
    if results is None:
        raise FormatError(
            f"{path}: no results folder (Results/ or Results_*) with .dat tables beside "
            f"{xml_path.name}"
        )
    dat_files = sorted(p for p in results.glob("*.dat") if p.is_file())
    tables = [
        t for t in (_read_psd(p) for p in dat_files if not p.name.lower().startswith("videos")) if t
    ]
    table = _pick(tables)
    if table is None:
        raise FormatError(
            f"{results}: no PSD table (LowerBinDiameter/PSD_corrected) in the .dat files"
        )
    warnings: list[str] = []
    dilution = first_number(_text(root, "SampleInformation", "Dilution"))
    if dilution is not None and dilution <= 0:
        dilution = None
    if dilution is None:
        warnings.append("dilution not recorded: the PSD is taken as the measured concentration")
    widths = table.upper - table.lower
    per_bin = table.psd * widths
    original = float(per_bin.sum())
    measured = original / dilution if dilution else original
    if original <= 0:
        warnings.append("empty run: the PSD holds no particles")
    edges = np.concatenate([table.lower, table.upper[-1:]])
    q = quantiles_from_bins(table.upper, per_bin, start=float(table.lower[0]))
    size = distribution(edges, per_bin, {}, q)

    videos_path = next((p for p in dat_files if p.name.lower().startswith("videos")), None)
    videos = _read_videos(videos_path) if videos_path else _Videos()
    per_video = []
    for number, particles, avg, sd in videos.rows:
        failed = particles == 0 or avg is None
        per_video.append(
            VideoSummary(
                name=f"video {number}",
                tracks=particles,
                mean_nm=avg,
                valid=not failed,
                note="no particles in this video"
                if failed
                else (f"SD {sd:g} nm" if sd is not None else None),
            )
        )
        if failed:
            warnings.append(f"video {number}: no particles sized")
    n_videos = videos.count or first_number(_text(root, "RecordingSettings", "NumOfVideos"))
    volume_ml = first_number(_text(root, "RecordingSettings", "Volume"))
    total = sum(r[1] for r in videos.rows) or (
        int(table.counts.sum()) if table.counts is not None else 0
    )
    check = None
    if n_videos and volume_ml and total:
        check = total / (n_videos * volume_ml) * (dilution or 1.0)
        if not math.isclose(check, original, rel_tol=0.05):
            warnings.append(
                f"particles / (videos × volume) × dilution = {check:.3g}/mL differs from the PSD's {original:.3g}/mL"
            )
    recording = _find(root, "RecordingSettings")
    processing = _find(root, "ProcessingSettings")
    settings = {
        section: _as_dict(element)
        for section, element in (
            ("RecordingSettings", recording),
            ("ProcessingSettings", processing),
        )
        if element is not None
    }
    temperature = next(
        (first_number(e.text) for e in root.iter() if "temperature" in _local(e.tag) and e.text),
        None,
    )
    viscosity = next(
        (first_number(e.text) for e in root.iter() if "viscosity" in _local(e.tag) and e.text), None
    )
    files = [xml_path.name] + [f"{results.name}/{p.name}" for p in (table.path, videos_path) if p]
    sha = {
        name: file_sha256(xml_path if i == 0 else results / name.split("/", 1)[1])
        for i, name in enumerate(files)
    }
    summary = {
        "computed_by_exocheck": f"size statistics from {table.path.name} (PSD_corrected × bin width); cumulative at upper bin edge",
        "bin_width_nm": float(widths[0]),
        "videos analysed": n_videos,
        "volume per video (mL)": volume_ml,
        "particles counted": total,
        "particles / (videos × volume) × dilution per ml": check,
        "mean of individual sizes (nm)": float(np.mean(videos.sizes)) if videos.sizes else None,
        "AnalyzerModel": _text(root, "MetaData", "AnalyzerModel"),
        "SerialNumber": _text(root, "MetaData", "SerialNumber"),
    }
    return Measurement(
        source=Source(
            instrument=INSTRUMENT,
            software_version=_text(root, "MetaData", "SoftwareVersion"),
            file_sha256=sha[xml_path.name],
            files=files,
        ),
        sample=_text(root, "SampleInformation", "Name"),
        date=parse_datetime(_text(root, "MetaData", "MeasurementStartDateTime")),
        temperature_c=temperature,
        viscosity_mpa_s=viscosity,
        dilution_factor=dilution,
        size=size,
        concentration=Concentration(
            particles_per_ml=original, measured_per_ml=measured, dilution_factor=dilution
        ),
        tracks=TrackSummary(count=int(total)),
        per_video=per_video,
        instrument_summary=summary,
        settings=settings,
        warnings=warnings,
        provenance={"inputs": sha},
    )
