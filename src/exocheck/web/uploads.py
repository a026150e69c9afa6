"""Uploads: bounded, checked, and either imported at once or queued as an analysis.

A file is streamed to a private folder while its size is counted (over the limit: refused,
nothing kept) and its SHA-256 computed. A video (by its suffix) becomes an analysis job; an
exocheck ``result.json`` or an instrument export is read at once and entered in the lot; anything
else is refused with one line and nothing stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from exocheck.batch.manifest import VIDEO_SUFFIXES
from exocheck.errors import ExocheckError, FormatError, ParameterError

CHUNK_BYTES = 1 << 20
#: form fields of a video upload: acquisition conditions (see exocheck.nta.analyze.Conditions)
CONDITION_FIELDS = (
    "fps",
    "pixel_size_um",
    "temperature_c",
    "exposure_ms",
    "viscosity_mpa_s",
    "refractive_index",
    "camera_gain",
    "wavelength_nm",
)


class UploadTooLarge(ExocheckError):
    """The upload is over the configured limit."""


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


async def save_upload(upload: UploadFile, folder: Path, max_bytes: int) -> Saved:
    """Stream ``upload`` into a new private folder under ``folder``, at most ``max_bytes``."""
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
                    raise UploadTooLarge(
                        f"{name}: the upload is larger than the limit of {max_bytes / 2**20:g} MB"
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


def values_from_form(form: dict[str, Any]) -> dict[str, float]:
    """The acquisition values the upload's form fields give (blank: not given), each within
    physical sense for its unit (:func:`exocheck.methods.units.check_value`)."""
    from exocheck.methods.units import check_values

    values: dict[str, float] = {}
    for field in CONDITION_FIELDS:
        raw = form.get(field)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            values[field] = float(str(raw).strip())
        except ValueError:
            raise ParameterError(f"{field}: not a number: {str(raw)[:40]!r}") from None
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
    raw = form.get("dilution_factor")
    if raw is None or not str(raw).strip():
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ParameterError(f"dilution_factor: not a number: {str(raw)[:40]!r}") from None
    if not value >= 1:
        raise ParameterError(f"dilution_factor must be ≥ 1, got {value:g}")
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


def check_video(saved: Saved, conditions) -> None:
    """Refuse, before any job exists, a video that cannot be opened or lacks the frame rate or
    pixel size (neither in the file nor in the form)."""
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
            f"{saved.name}: the file does not say its {' and '.join(missing)}; "
            "give them as form fields"
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


__all__ = ["CONDITION_FIELDS", "FormatError", "Saved", "UnsupportedUpload", "UploadTooLarge"]
