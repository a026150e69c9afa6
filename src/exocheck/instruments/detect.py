"""Recognise an export by its content and dispatch it to the right importer."""

from __future__ import annotations

import csv
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from exocheck.errors import ExocheckError, FormatError
from exocheck.instruments._text import decode, norm_key
from exocheck.instruments.fcs import read_fcs
from exocheck.instruments.nanosight import read_nanosight
from exocheck.instruments.particles import is_particle_table, read_nanosight_particles
from exocheck.instruments.viewsizer import is_viewsizer_xml, read_viewsizer
from exocheck.instruments.zetaview import read_zetaview
from exocheck.instruments.zetaview_positions import is_positions_table, read_zetaview_positions
from exocheck.records import Measurement

FORMATS = (
    "nanosight",
    "nanosight-particles",
    "zetaview",
    "zetaview-positions",
    "viewsizer",
    "fcs",
)
_SNIFF_BYTES = 256 * 1024

#: Errors a parser may raise on a damaged file; turned into a FormatError naming the file.
_DAMAGE = (
    ValueError, IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError,
    UnicodeError, csv.Error, ET.ParseError, struct.error, MemoryError, RecursionError,
)  # fmt: skip


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def detect_format(path: str | Path) -> str:
    """The export format of ``path``, judged from its content: one of :data:`FORMATS`.

    A folder is a ViewSizer result folder. Files are recognised by the FCS header, a
    ViewSizer settings XML, the NTA summary sections, the ZetaView header keys or the
    ZetaView position-table header; the file name is not used.

    Raises
    ------
    FormatError
        The path does not exist or is not a supported export.
    """
    path = Path(path)
    if path.is_dir():
        return "viewsizer"
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder")
    data = _head(path)
    if not data.strip(b"\x00 \t\r\n"):
        raise FormatError(f"{path}: empty file")
    if data.startswith((b"FCS2.", b"FCS3.")):
        return "fcs"
    if is_viewsizer_xml(data):
        return "viewsizer"
    text = decode(data)
    lower = text[:65536].lower()
    if "nta experiment summary" in lower or (
        "[experiment details]" in lower and "[results]" in lower
    ):
        return "nanosight"
    if "[capturesettings]" in lower and "[filenames]" in lower:
        raise FormatError(
            f"{path}: a NanoSight .nano settings file; import the ExperimentSummary.csv "
            "beside it (the .nano is read with it)"
        )
    if is_particle_table(text[:65536]):
        return "nanosight-particles"
    keys = {
        norm_key(line.split("\t")[0])
        for line in text.splitlines()[:400]
        if "\t" in line or ":" in line
    }
    zetaview_keys = {
        "number of traces",
        "zetaview s/n",
        "cell s/n",
        "type of measurement",
        "original file",
    }
    if len(keys & zetaview_keys) >= 2 or any(k.startswith("zetaview s/n") for k in keys):
        return "zetaview"
    if is_positions_table(text):
        return "zetaview-positions"
    raise FormatError(
        f"{path}: not a supported instrument export (NanoSight ExperimentSummary.csv, ZetaView "
        ".txt, ViewSizer result folder or FCS file)"
    )


_READERS: dict[str, Callable[[Path], Measurement]] = {
    "nanosight": read_nanosight,
    "nanosight-particles": read_nanosight_particles,
    "zetaview": read_zetaview,
    "zetaview-positions": read_zetaview_positions,
    "viewsizer": read_viewsizer,
    "fcs": read_fcs,
}


def read_measurement(
    path: str | Path, format: str | None = None, *, resize: bool = False
) -> Measurement:
    """Import any supported export into a :class:`~exocheck.records.Measurement`.

    Parameters
    ----------
    path
        An export file, or a ViewSizer result folder.
    format
        One of :data:`FORMATS` to skip detection.
    resize
        Re-size the vendor's per-track data with exocheck's maximum-likelihood sizing
        (:mod:`.resize`); the result goes to ``diagnostics["resized"]``, and a record without
        per-track data gets a warning saying so.

    Raises
    ------
    FormatError
        Not a supported export, or a damaged one; the message names the file.
    """
    path = Path(path)
    kind = format or detect_format(path)
    if kind not in _READERS:
        raise FormatError(f"unknown format {kind!r}; use one of {', '.join(FORMATS)}")
    try:
        measurement = _READERS[kind](path)
        if resize:
            from exocheck.instruments.resize import resize as resize_tracks
            from exocheck.instruments.resize import vendor_tracks

            tracks = vendor_tracks(path)
            if tracks is None:
                measurement.warnings.append(
                    "no per-track data (per-particle CSV or per-track FCS): nothing to re-size"
                )
            else:
                measurement = resize_tracks(measurement, tracks)
        return measurement
    except ExocheckError:
        raise
    except _DAMAGE as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"{path}: damaged {kind} export ({message[:200]})") from None
