"""Uploads: bounded, checked, and either imported at once or queued as analyses.

A file is streamed to a private folder while its size is counted (over the limit: refused,
nothing kept) and its SHA-256 computed. Videos (by their suffix) are replicates of one sample,
analysed together as one job (:mod:`exocheck.web.replicates`) with the method, acquisition
conditions and bead calibration chosen on the form; an exocheck ``result.json`` or an instrument
export is read at once and entered in the lot; anything else is refused with one line and nothing
stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from exocheck.batch.manifest import VIDEO_SUFFIXES
from exocheck.errors import ExocheckError, FormatError, ParameterError

CHUNK_BYTES = 1 << 20
#: the largest calibration file taken (one made by ``exocheck calibrate`` is about 1 kB)
MAX_CALIBRATION_BYTES = 1 << 20


@dataclass(frozen=True)
class FormField:
    """A number field of the upload form: its name (the API's), the label a person reads (with
    the unit), and a hint."""

    name: str
    label: str
    hint: str = ""
    default: str = ""


#: acquisition conditions of a video upload, in form order (see exocheck.nta.analyze.Conditions)
CONDITION_INPUTS = (
    FormField("fps", "Frame rate (frames/s)", "blank: the method's, else the file's"),
    FormField("pixel_size_um", "Pixel size (µm)", "blank: the method's, else the file's"),
    FormField("temperature_c", "Temperature (°C)", "blank: the method's, else 25 °C"),
    FormField("exposure_ms", "Exposure (ms)", "blank: method's, file's, half a frame"),
    FormField("viscosity_mpa_s", "Viscosity (mPa·s)", "blank: water at that temperature"),
    FormField("refractive_index", "Particle refractive index", "optional: for the detection limit"),
    FormField("camera_gain", "Camera gain", "compared with the calibration's"),
    FormField("wavelength_nm", "Laser wavelength (nm)", "compared with the calibration's"),
)
#: the form field of the dilution before measurement
DILUTION_INPUT = FormField(
    "dilution_factor", "Dilution factor (×)", "≥ 1; result for the undiluted sample"
)
#: form fields of a video upload: acquisition conditions (see exocheck.nta.analyze.Conditions)
CONDITION_FIELDS = tuple(f.name for f in CONDITION_INPUTS)
LABELS = {f.name: f.label for f in (*CONDITION_INPUTS, DILUTION_INPUT)}


class UploadTooLarge(ExocheckError):
    """The upload is over the configured limit (its size, or its number of files)."""


class UnsupportedUpload(ExocheckError):
    """Not a video, an exocheck result or a supported instrument export."""


@dataclass
class Saved:
    """An upload on disk: its folder is removed by :meth:`discard`."""

    path: Path
    name: str
    sha256: str
    size_bytes: int

    def discard(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


def safe_name(name: str | None) -> str:
    """The file's own name, reduced to characters safe in a path (no folders, not hidden)."""
    base = Path((name or "").replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")
    if not base:
        raise ParameterError("the upload has no file name")
    return base[-150:]


async def save_upload(
    upload: UploadFile, folder: Path, max_bytes: int, *, limit_bytes: int | None = None
) -> Saved:
    """Stream ``upload`` into a new private folder under ``folder``, at most ``max_bytes``
    (what is left of the limit ``limit_bytes`` on the files of one upload together, when
    given: the message then says so)."""
    name = safe_name(upload.filename)
    target_dir = folder / "incoming" / secrets.token_hex(8)
    target_dir.mkdir(parents=True, exist_ok=False)
    target = target_dir / name
    digest = hashlib.sha256()
    size = 0
    try:
        with open(target, "wb") as out:
            while block := await upload.read(CHUNK_BYTES):
                size += len(block)
                if size > max_bytes:
                    together = " (all files together)" if limit_bytes is not None else ""
                    limit = limit_bytes if limit_bytes is not None else max_bytes
                    raise UploadTooLarge(
                        f"{name}: the upload is larger than the limit of {limit / 2**20:g} MB"
                        f"{together}"
                    )
                digest.update(block)
                out.write(block)
        if size == 0:
            raise UnsupportedUpload(f"{name}: the file is empty")
    except BaseException:
        shutil.rmtree(target_dir, ignore_errors=True)
        raise
    return Saved(target, name, digest.hexdigest(), size)


def is_video(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def _number(form: dict[str, Any], name: str) -> float | None:
    raw = form.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return float(str(raw).strip())
    except ValueError:
        raise ParameterError(f"{LABELS[name]} ({name}): not a number: {str(raw)[:40]!r}") from None


def values_from_form(form: dict[str, Any]) -> dict[str, float]:
    """The acquisition values the upload's form fields give (blank: not given), each within
    physical sense for its unit (:func:`exocheck.methods.units.check_value`)."""
    from exocheck.methods.units import check_values

    values = {name: _number(form, name) for name in CONDITION_FIELDS}
    values = {k: v for k, v in values.items() if v is not None}
    check_values(values, style="field")
    return values


def conditions_from_form(form: dict[str, Any]):
    """Acquisition conditions of a video from the upload's form fields (blank: from the file)."""
    from exocheck.nta.analyze import Conditions

    return Conditions(**values_from_form(form))


def text_field(form: dict[str, Any], name: str, limit: int = 2000) -> str | None:
    """A text field of the form as one line (None when blank)."""
    text = " ".join(str(form.get(name) or "").split())
    if len(text) > limit:
        raise ParameterError(f"{name}: at most {limit} characters")
    return text or None


def dilution_from_form(form: dict[str, Any]) -> float | None:
    value = _number(form, "dilution_factor")
    if value is not None and not value >= 1:
        raise ParameterError(f"{LABELS['dilution_factor']} must be ≥ 1, got {value:g}")
    return value


def read_record(saved: Saved):
    """The measurement in an exocheck result JSON or an instrument export (FormatError → one
    line naming the upload, never the server's path)."""
    from exocheck.records import SCHEMA, Measurement

    try:
        head = saved.path.read_bytes()[:4096]
        if f'"{SCHEMA}"'.encode() in head:
            return Measurement.load(saved.path)
        from exocheck.instruments import read_measurement

        return read_measurement(saved.path)
    except ExocheckError as exc:
        message = str(exc).replace(str(saved.path), saved.name).replace(str(saved.path.parent), "")
        raise UnsupportedUpload(
            f"{saved.name}: not a video ({', '.join(VIDEO_SUFFIXES)}), an exocheck result or a "
            f"supported instrument export ({message})"
        ) from None


def read_calibration(saved: Saved):
    """The bead calibration in an uploaded file, checked as ``--calibration`` is on the command
    line (:meth:`~exocheck.nta.concentration.Calibration.load`); a bad one is refused in one
    line naming the upload, never the server's path."""
    from exocheck.nta.concentration import Calibration

    try:
        return Calibration.load(saved.path)
    except ExocheckError as exc:
        message = str(exc).replace(str(saved.path), saved.name)
        raise FormatError(f"calibration {message}") from None


def check_video(saved: Saved, conditions) -> dict[str, float | None]:
    """Refuse, before any job exists, a video that cannot be opened or lacks the frame rate or
    pixel size (neither in the file nor in the form); otherwise its optics (the form's values,
    else the file's), as a calibration is compared with."""
    from exocheck.io.video import open_video

    try:
        with open_video(
            saved.path, fps=conditions.fps, pixel_size_um=conditions.pixel_size_um
        ) as video:
            meta = video.meta
    except ExocheckError as exc:
        message = str(exc).replace(str(saved.path), saved.name)
        raise UnsupportedUpload(f"{saved.name}: not a readable video ({message})") from None
    missing = [
        name
        for name, value in (("fps", meta.fps), ("pixel_size_um", meta.pixel_size_um))
        if not value
    ]
    if missing:
        raise ParameterError(
            f"{saved.name}: the file does not say its {' and '.join(LABELS[n] for n in missing)}:"
            f" enter them on the form (fields {', '.join(missing)})"
        )
    exposure = conditions.exposure_ms if conditions.exposure_ms is not None else meta.exposure_ms
    return {
        "pixel_size_um": conditions.pixel_size_um or meta.pixel_size_um,
        "fps": conditions.fps or meta.fps,
        "exposure_ms": exposure,
        "camera_gain": conditions.camera_gain,
        "wavelength_nm": conditions.wavelength_nm,
    }


def check_calibration_optics(calibration, optics: dict[str, float | None], video: str) -> None:
    """Refuse a calibration made on other optics than the video's (pixel size, frame rate,
    exposure, gain, wavelength, as :func:`exocheck.optics.optics_differences` compares them)."""
    from exocheck.optics import optics_differences

    differences = optics_differences(asdict(calibration), optics)
    if differences:
        raise ParameterError(
            f"{video}: the calibration was made on other optics ({'; '.join(differences)}): "
            "choose a calibration made on the optics of these videos"
        )


def keep_video(saved: Saved, folder: Path) -> Path:
    """Move an uploaded video to ``folder/uploads/<sha256>/<name>`` (kept for the analysis)."""
    final_dir = folder / "uploads" / saved.sha256
    final_dir.mkdir(parents=True, exist_ok=True)
    final = final_dir / saved.name
    if final.exists():
        saved.discard()
    else:
        saved.path.replace(final)
        shutil.rmtree(saved.path.parent, ignore_errors=True)
    return final


def keep_calibration(saved: Saved, folder: Path) -> Path:
    """Move an uploaded calibration to ``folder/calibrations/<sha256>.json`` (kept: the jobs
    that use it read it there)."""
    final_dir = folder / "calibrations"
    final_dir.mkdir(parents=True, exist_ok=True)
    final = final_dir / f"{saved.sha256}.json"
    if final.exists():
        saved.discard()
    else:
        saved.path.replace(final)
        shutil.rmtree(saved.path.parent, ignore_errors=True)
    return final


__all__ = [
    "CONDITION_FIELDS",
    "CONDITION_INPUTS",
    "DILUTION_INPUT",
    "FormField",
    "FormatError",
    "Saved",
    "UnsupportedUpload",
    "UploadTooLarge",
]
