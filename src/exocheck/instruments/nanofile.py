"""The NanoSight ``.nano`` companion file (INI-style capture settings, one value per video)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from exocheck.instruments._text import decode, norm_key, read_bytes, to_float

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


@dataclass
class NanoFile:
    """Sections of a ``.nano`` file: keys normalised (lower case), values as written."""

    filenames: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    capture: dict[str, list[str]] = field(default_factory=dict)

    def numbers(self, key: str) -> list[float]:
        """The finite numbers of a ``[CaptureSettings]`` comma list (one per video)."""
        values = (to_float(v) for v in self.capture.get(key, []))
        return [v for v in values if v is not None]


def read_nano(path: Path) -> NanoFile:
    """Parse a ``.nano`` file; unknown sections and malformed lines are skipped."""
    nano = NanoFile()
    section = ""
    for line in decode(read_bytes(path)).splitlines():
        match = _SECTION.match(line)
        if match:
            section = norm_key(match.group(1))
            continue
        key, sep, value = line.partition("=")
        if not sep:
            if section == "filenames" and line.strip():
                nano.filenames.append(line.strip())
            continue
        key, value = norm_key(key), value.strip()
        if section == "filenames":
            nano.filenames.append(value)
        elif section == "details":
            nano.details[key] = value
        elif section == "capturesettings":
            nano.capture[key] = [v.strip() for v in value.split(",")]
    return nano


#: The capture time NanoSight software puts in its file names (``2021-04-01 15-42-48``); the
#: separators vary with the version and with users' renaming, the digits do not.
_STAMP = re.compile(
    r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})[ _T-]+(\d{2})[-_.:h]?(\d{2})[-_.:m]?(\d{2})(?!\d)"
)


def name_timestamp(name: str) -> str | None:
    """The capture time in a NanoSight file name, as ``YYYYMMDDhhmmss``, or None."""
    found = _STAMP.findall(name)
    if len(found) != 1:  # none, or ambiguous
        return None
    return "".join(found[0])


def find_companion(summary: Path) -> Path | None:
    """The ``.nano`` file of a NanoSight ``…-ExperimentSummary.csv``, if one is beside it.

    First ``<experiment>.nano`` for ``<experiment>-ExperimentSummary.csv``. Users often rename
    the summary (``EMT1 d200 pre1 2021-04-01 15-42-48-ExperimentSummary.csv`` beside
    ``EMT1 d200 2021-04-01 15-42-48.nano``); then the one ``.nano`` in the folder whose name
    carries the same capture time (to the second) is its companion. None when there is no
    such file, or more than one.
    """
    stem = re.sub(r"[-_ ]?experimentsummary$", "", summary.stem, flags=re.IGNORECASE)
    if not stem or stem == summary.stem:
        return None
    for candidate in (summary.with_name(stem + ".nano"), summary.with_name(stem + ".NANO")):
        if candidate.is_file():
            return candidate
    stamp = name_timestamp(stem)
    if stamp is None:
        return None
    try:
        same_time = [
            p
            for p in summary.parent.iterdir()
            if p.suffix.lower() == ".nano" and name_timestamp(p.stem) == stamp and p.is_file()
        ]
    except OSError:
        return None
    return same_time[0] if len(same_time) == 1 else None
