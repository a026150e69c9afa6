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


def find_companion(summary: Path) -> Path | None:
    """``<experiment>.nano`` beside ``<experiment>-ExperimentSummary.csv``, if it exists."""
    stem = re.sub(r"[-_ ]?experimentsummary$", "", summary.stem, flags=re.IGNORECASE)
    if not stem or stem == summary.stem:
        return None
    for candidate in (summary.with_name(stem + ".nano"), summary.with_name(stem + ".NANO")):
        if candidate.is_file():
            return candidate
    return None
