"""The one measurement schema shared by the NTA engine, the instrument importers, the store,
the QC layer and the reports.

A :class:`Measurement` is what exocheck knows about one sample measured once (one or several
videos / positions). It serialises to JSON carrying ``"schema": "exocheck.nta/1"``.

Units live in field names. Size distributions are number-weighted unless a name says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from exocheck import __version__
from exocheck.errors import FormatError

SCHEMA = "exocheck.nta/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Interval(_Model):
    """A two-sided confidence interval."""

    low: float
    high: float
    level: float = 0.95


class Source(_Model):
    """Where a measurement came from."""

    instrument: str = Field(description="'exocheck' for the engine, else the vendor instrument")
    software_version: str | None = None
    file_sha256: str | None = Field(default=None, description="SHA-256 of the primary input file")
    files: list[str] = Field(default_factory=list, description="names of all input files")


class SizePeak(_Model):
    """A peak of a number-weighted size distribution."""

    diameter_nm: float
    fraction: float = Field(description="number fraction of the particles in the peak")
    support: float | None = Field(
        default=None, description="share of bootstrap resamples that show the peak (0-1)"
    )


class SizeDistribution(_Model):
    """Number-weighted size distribution on bins, with summary statistics.

    ``density`` holds the fraction of particles in each bin and sums to 1 (or is empty when the
    source gives only summary values). ``density_ci_low`` / ``density_ci_high`` are a pointwise
    95 % band of the same fractions (empty where the source gives none). ``peaks`` lists the peaks
    that the data support, highest first.
    """

    bin_edges_nm: list[float] = Field(default_factory=list)
    density: list[float] = Field(default_factory=list)
    density_ci_low: list[float] = Field(default_factory=list)
    density_ci_high: list[float] = Field(default_factory=list)
    peaks: list[SizePeak] = Field(default_factory=list)
    d10_nm: float | None = None
    d50_nm: float | None = None
    d90_nm: float | None = None
    mode_nm: float | None = None
    mean_nm: float | None = None
    sd_nm: float | None = None
    ci: dict[str, Interval] = Field(
        default_factory=dict, description="confidence intervals keyed by statistic, e.g. 'd50_nm'"
    )

    @field_validator("density")
    @classmethod
    def _density_sums_to_one(cls, value: list[float]) -> list[float]:
        if value:
            total = float(np.sum(value))
            if not np.isfinite(total) or abs(total - 1.0) > 1e-6:
                raise ValueError(f"density must sum to 1, got {total:.6g}")
        return value

    def centres_nm(self) -> np.ndarray:
        """Bin centres (arithmetic means of the edges), nm."""
        edges = np.asarray(self.bin_edges_nm, dtype=float)
        return 0.5 * (edges[:-1] + edges[1:])


class Concentration(_Model):
    """Particle number concentration.

    ``particles_per_ml`` refers to the original sample (dilution-corrected where a dilution is
    known); ``measured_per_ml`` is what was in the measurement cell.
    """

    particles_per_ml: float | None = None
    measured_per_ml: float | None = None
    dilution_factor: float | None = None
    calibrated: bool | None = Field(
        default=None, description="engine only: detection volume from a bead calibration"
    )
    calibration_mismatch: str | None = Field(
        default=None,
        description="engine only: the optics on which the measurement differs from its "
        "calibration (used under a recorded override; the concentration is then not used for "
        "release)",
    )
    ci: Interval | None = None
    sd_per_ml: float | None = Field(default=None, description="SD over videos / positions")


class TrackSummary(_Model):
    count: int = 0
    mean_length_frames: float | None = None


class VideoSummary(_Model):
    """Per-video (or per-position) values, as instruments report them."""

    name: str
    concentration_per_ml: float | None = None
    particles_per_frame: float | None = None
    tracks: int | None = None
    d10_nm: float | None = None
    d50_nm: float | None = None
    d90_nm: float | None = None
    mean_nm: float | None = None
    mode_nm: float | None = None
    sd_nm: float | None = None
    valid: bool = True
    note: str | None = None


class Channel(_Model):
    """How a measurement was recorded: in scatter, or in fluorescence through a filter.

    ``settings`` holds the acquisition and detection settings that set a channel's detection
    volume, as the instrument or the engine states them (e.g. ``sensitivity``, ``shutter``,
    ``fps``, ``min_track_frames``, ``exposure_ms``): two channels whose settings differ count
    particles in different volumes, and their counts cannot be compared without a calibration.
    """

    mode: Literal["scatter", "fluorescence"] = "scatter"
    laser_wavelength_nm: float | None = None
    filter_wavelength_nm: float | None = Field(
        default=None, description="edge of the long-pass (or centre of the band-pass) filter, nm"
    )
    filter_name: str | None = Field(default=None, description="the filter as the source states it")
    settings: dict[str, Any] = Field(default_factory=dict)


class LabelledClass(_Model):
    """The labelled fraction of one size class (concentrations refer to the original sample)."""

    low_nm: float
    high_nm: float
    total_per_ml: float = Field(description="all particles in the class (scatter channel)")
    labelled_per_ml: float = Field(
        description="labelled particles in the class (fluorescence channel, controls subtracted)"
    )
    fraction: float | None = Field(default=None, description="labelled / total, 0-1")
    ci: Interval | None = None
    fluorescent_tracks: float = Field(
        default=0.0, description="fluorescent tracks whose size falls in the class"
    )


class LabelledFraction(_Model):
    """Which share of the particles carries a label: the result of ``exocheck labelled-fraction``.

    ``fraction`` and ``labelled_per_ml`` cover ``low_nm``-``high_nm`` (the range both channels
    size); ``classes`` split it by size. ``subtracted_per_ml`` is what each control took away
    from the fluorescent concentration in that range; ``inputs`` names the files by role.
    """

    marker: str | None = Field(default=None, description="what the label marks, e.g. 'CD63'")
    low_nm: float
    high_nm: float
    fraction: float = Field(description="labelled / total particles in the range, 0-1")
    ci: Interval
    labelled_per_ml: float
    labelled_ci: Interval | None = None
    total_per_ml: float
    classes: list[LabelledClass] = Field(default_factory=list)
    subtracted_per_ml: dict[str, float] = Field(default_factory=dict)
    inputs: dict[str, list[str]] = Field(default_factory=dict)


class Provenance(_Model):
    exocheck_version: str = __version__
    created: datetime = Field(default_factory=lambda: datetime.now().astimezone())
    inputs: dict[str, str] = Field(default_factory=dict, description="file name -> SHA-256")


class Measurement(_Model):
    """One measurement of one sample: what the engine writes and what importers produce."""

    schema_: Literal["exocheck.nta/1"] = Field(default=SCHEMA, alias="schema")
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    source: Source
    sample: str | None = None
    date: datetime | None = None
    temperature_c: float | None = None
    viscosity_mpa_s: float | None = None
    dilution_factor: float | None = None
    size: SizeDistribution = Field(default_factory=SizeDistribution)
    concentration: Concentration = Field(default_factory=Concentration)
    tracks: TrackSummary = Field(default_factory=TrackSummary)
    particles_per_frame: float | None = None
    per_video: list[VideoSummary] = Field(default_factory=list)
    channel: Channel | None = Field(
        default=None, description="scatter or fluorescence; None where the source does not say"
    )
    labelled: LabelledFraction | None = Field(
        default=None,
        description="labelled-fraction results; size and concentration then describe the "
        "labelled particles",
    )
    instrument_summary: dict[str, Any] = Field(
        default_factory=dict, description="the instrument's own stated statistics, verbatim keys"
    )
    settings: dict[str, Any] = Field(default_factory=dict)
    diagnostics: dict[str, Any] = Field(
        default_factory=dict, description="engine diagnostics: detection limit, drift, noise, ..."
    )
    provenance: Provenance = Field(default_factory=Provenance)
    warnings: list[str] = Field(default_factory=list)

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(by_alias=True, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> Measurement:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"not a JSON measurement record: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise FormatError(f"not an exocheck measurement record (schema must be '{SCHEMA}')")
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            first = str(exc).splitlines()
            raise FormatError(f"invalid measurement record: {' '.join(first[:3])}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Measurement:
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise FormatError(f"{path}: cannot read ({exc.strerror})") from None
        try:
            return cls.from_json(text)
        except FormatError as exc:
            raise FormatError(f"{path}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write_text(Path(path), self.to_json())


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's content, streamed (``hashlib.file_digest``: one reused buffer, 30 %
    faster than reading blocks; ``chunk_bytes`` is kept for callers and unused)."""
    del chunk_bytes
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder and rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write several files into ``folder`` all or nothing.

    Every file is first written in full under a temporary name; only then are they renamed into
    place. A failure while writing (a full disk, an interrupt) removes the temporary files and any
    folder made here, leaving earlier outputs in ``folder`` as they were.
    """
    made = []  # folders that did not exist, innermost first
    probe = folder
    while not probe.exists():
        made.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    temporary: list[tuple[str, str]] = []
    try:
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
            temporary.append((tmp, name))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o666 & ~_umask())
        for tmp, name in temporary:
            os.replace(tmp, folder / name)
    except BaseException:
        for tmp, _ in temporary:
            Path(tmp).unlink(missing_ok=True)
        for path in made:
            try:
                path.rmdir()
            except OSError:
                break
        raise
