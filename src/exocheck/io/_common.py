"""Helpers shared by the video readers: error messages, parameter checks, luminance."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from exocheck.errors import ParameterError, VideoError

# ITU-R BT.601 luma weights, in the 16-bit fixed point Pillow uses for RGB -> "L".
_LUMA_FIXED = (19595, 38470, 7471)
_LUMA = (0.299, 0.587, 0.114)


def video_error(path: Path | str, cause: object) -> VideoError:
    """A :class:`VideoError` whose one-line message is ``"<path>: <cause>"``."""
    text = " ".join(str(cause).split()) or type(cause).__name__
    return VideoError(f"{path}: {text}")


def check_positive(name: str, value: float | None) -> float | None:
    """Return ``value`` as float if it is None or finite and > 0, else raise ParameterError."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ParameterError(f"{name} must be finite and > 0, got {value!r}")
    return number


def natural_key(name: str) -> list[object]:
    """Sort key that orders embedded numbers by value: ``frame2 < frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601 weights) of colour frames ``[..., channels]``, same integer dtype.

    The last axis holds the samples: 1 or 2 (grey, grey + alpha) returns the first channel,
    3 or 4 (RGB, RGBA) the weighted sum of R, G, B; alpha is ignored. For 8-bit input the
    result equals Pillow's ``convert("L")`` exactly.
    """
    channels = rgb.shape[-1]
    if channels in (1, 2):
        return np.ascontiguousarray(rgb[..., 0])
    if channels not in (3, 4):
        raise ValueError(f"cannot make a grey image from {channels} samples per pixel")
    if rgb.dtype == np.uint8:
        wide = rgb[..., :3].astype(np.uint32)
        luma = wide[..., 0] * _LUMA_FIXED[0]
        luma += wide[..., 1] * _LUMA_FIXED[1]
        luma += wide[..., 2] * _LUMA_FIXED[2]
        luma += 0x8000
        luma >>= 16
        return luma.astype(np.uint8)
    weights = np.asarray(_LUMA, dtype=np.float64 if rgb.dtype.itemsize > 2 else np.float32)
    luma = rgb[..., :3] @ weights
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(luma), info.min, info.max).astype(rgb.dtype)
    return luma.astype(rgb.dtype)


class Reader:
    """What every backend provides: frame geometry, metadata and range reads.

    Subclasses fill the attributes in ``__init__`` (reading headers only) and implement
    :meth:`read_range`; sequential decoders override :meth:`chunks` as well.
    """

    format: str = ""
    n_frames: int = 0
    height: int = 0
    width: int = 0
    dtype: np.dtype = np.dtype(np.uint8)
    fps: float | None = None
    pixel_size_um: float | None = None
    exposure_ms: float | None = None

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_range(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def chunks(self, chunk_frames: int, start: int, stop: int):
        """Yield ``(first_index, frames)`` for ``[start, stop)`` in chunks of ``chunk_frames``."""
        for first in range(start, stop, chunk_frames):
            yield first, self.read_range(first, min(first + chunk_frames, stop))

    def close(self) -> None:
        """Release file handles (idempotent)."""
