"""A lab's export tree: which paths are measurements, and the original files of one.

:func:`collect` walks a folder and groups the files of one measurement: a NanoSight summary
with its ``.nano`` and per-particle tables, a ZetaView size file with its ``_11pos`` table, a
ViewSizer sample folder as a whole. :func:`original_file` gives the file to keep as a
measurement's original (a folder's files packed into one deterministic ZIP).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from exocheck.errors import FormatError
from exocheck.instruments._text import read_bytes
from exocheck.instruments.nanofile import find_companion
from exocheck.instruments.particles import is_particle_table_name, particle_tables_for
from exocheck.instruments.viewsizer import is_viewsizer_xml, locate
from exocheck.instruments.zetaview_positions import find_positions
from exocheck.records import Measurement

#: Files that are never instrument exports (videos, images, documents): not tried.
NOT_EXPORTS = frozenset(
    {".avi", ".mp4", ".mov", ".mkv", ".wmv", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp",
     ".gif", ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".zip", ".7z", ".gz",
     ".exe", ".dll", ".ini", ".log", ".db", ".lnk", ".md", ".html", ".htm", ".py", ".r", ".rdata"}
)  # fmt: skip
_NOISE = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})
#: Largest ViewSizer folder packed as an original (its tables are a few MB).
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024


@dataclass
class Tree:
    """What :func:`collect` found: measurements to import (with the files grouped into each)
    and the files it did not try, by suffix."""

    measurements: list[tuple[Path, list[Path]]] = field(default_factory=list)
    not_tried: dict[str, int] = field(default_factory=dict)


def _is_viewsizer_folder(folder: Path, files: list[Path]) -> bool:
    xml = [f for f in files if f.suffix.lower() == ".xml"]
    if not xml:
        return False
    try:
        has_results = any(
            p.is_dir() and (p.name.lower() == "results" or p.name.lower().startswith("results_"))
            for p in folder.iterdir()
        )
        return has_results and any(is_viewsizer_xml(read_bytes(f)[:65536]) for f in xml)
    except (OSError, FormatError):
        return False


def collect(root: Path) -> Tree:
    """Walk ``root`` (not following links) and group the files of each measurement."""
    tree = Tree()
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        here = Path(folder)
        files = sorted(here / n for n in names if (here / n).is_file())
        if _is_viewsizer_folder(here, files):
            tree.measurements.append((here, []))
            dirs[:] = []  # its Results folder belongs to it
            continue
        taken: set[Path] = set()
        for file in files:
            if find_companion(file) is not None:  # a summary takes its .nano
                taken.add(find_companion(file))  # type: ignore[arg-type]
            if re.search(r"_size_", file.name, re.IGNORECASE):
                pos = find_positions(file)
                if pos is not None:
                    taken.add(pos)
            for table in particle_tables_for(file):
                taken.add(table)
        for file in files:
            lower = file.name.lower()
            if file in taken:
                continue
            if lower in _NOISE or lower.startswith((".", "~$")):
                continue
            if file.suffix.lower() in NOT_EXPORTS:
                key = file.suffix.lower()
                tree.not_tried[key] = tree.not_tried.get(key, 0) + 1
                continue
            grouped = [f for f in _grouped_with(file) if f in taken]
            tree.measurements.append((file, grouped))
    return tree


def _grouped_with(file: Path) -> list[Path]:
    out = []
    nano = find_companion(file)
    if nano is not None:
        out.append(nano)
    if re.search(r"_size_", file.name, re.IGNORECASE):
        pos = find_positions(file)
        if pos is not None:
            out.append(pos)
    if not is_particle_table_name(file.name):
        out.extend(particle_tables_for(file))
    return out


def input_files(path: Path, measurement: Measurement) -> tuple[Path, list[Path]]:
    """(root folder, files read) for a measurement imported from ``path``."""
    path = Path(path)
    if path.is_dir():
        xml, _ = locate(path)
        root = xml.parent
    else:
        root = path.parent
    files = [root / name for name in measurement.source.files]
    return root, [f for f in files if f.is_file()]


def pack(root: Path, files: list[Path]) -> bytes:
    """The files as one ZIP with fixed timestamps, sorted: the same files give the same bytes."""
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
            data = read_bytes(file, MAX_ARCHIVE_BYTES)
            total += len(data)
            if total > MAX_ARCHIVE_BYTES:
                raise FormatError(f"{root}: more than {MAX_ARCHIVE_BYTES} bytes to keep")
            info = zipfile.ZipInfo(file.relative_to(root).as_posix(), (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


@contextmanager
def original_file(path: Path, measurement: Measurement) -> Iterator[Path]:
    """The file to keep as the original of a measurement imported from ``path``.

    A file is itself. A folder (a ViewSizer sample folder or its results folder) is packed
    with :func:`pack` into ``<folder>.zip`` holding the files the import read, in a temporary
    folder removed afterwards.
    """
    path = Path(path)
    if not path.is_dir():
        yield path
        return
    root, files = input_files(path, measurement)
    data = pack(root, files)
    with tempfile.TemporaryDirectory(prefix="exocheck-original-") as tmp:
        target = Path(tmp) / f"{root.name or 'measurement'}.zip"
        target.write_bytes(data)
        yield target
