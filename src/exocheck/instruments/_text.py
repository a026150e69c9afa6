"""Helpers shared by the importers: tolerant decoding, numbers, dates and bin statistics.

Real exports come from many installations: UTF-8 or ISO-8859-1 (or Windows-1252), with or
without a byte-order mark, CRLF or LF, stray NUL bytes, decimal commas. These helpers accept all
of that; the importers stay strict about which values they require.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np

from exocheck.errors import FormatError

#: Largest file an importer reads into memory (instrument exports are a few MB at most).
MAX_TEXT_BYTES = 64 * 1024 * 1024

_MICRO = ("\u00b5", "\u03bc", "\u00c2\u00b5", "\u00ce\u00bc")


def read_bytes(path: Path, limit: int = MAX_TEXT_BYTES) -> bytes:
    """Read a whole (small) file, with a FormatError naming the file on failure."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise FormatError(f"{path}: {size} bytes is too large for an instrument export")
        return path.read_bytes()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def decode(data: bytes) -> str:
    """Decode an export: BOM-aware UTF-8 / UTF-16, else ISO-8859-1; NUL bytes removed.

    ISO-8859-1 maps every byte, so decoding never fails; a file that is not text is rejected
    later by the importer that looks for its structure.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    else:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        data = data.replace(b"\x00", b"")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text.replace("\x00", "").replace("\ufeff", "")


def norm_key(key: str) -> str:
    """Normalise a key for lookup: lower case, µ spellings (µ, μ, mu) as 'u', single spaces,
    no colons."""
    for micro in _MICRO:
        key = key.replace(micro, "u")
    key = key.replace("\ufffd", "?")
    key = re.sub(r"\s+", " ", key).strip().rstrip(":").strip().lower()
    # some software versions spell the micro prefix "mu": "mus" (µs), "mum/s" (µm/s)
    return re.sub(r"(?<![a-z])mu(?=[sm](?![a-z]))", "u", key)


_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def to_float(value: object) -> float | None:
    """A finite float from a cell, accepting decimal commas; None when empty or not a number."""
    if value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    text = str(value).strip().strip('"').strip()
    if not text or not _NUMBER.match(text):
        return None
    number = float(text.replace(",", "."))
    return number if math.isfinite(number) else None


def first_number(value: object) -> float | None:
    """The first number inside a string such as ``'25.13 sensed'`` or ``'2.3E-06 mL'``."""
    if value is None:
        return None
    match = re.search(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?", str(value))
    return to_float(match.group(0)) if match else None


_DATE_PATTERNS = (
    # NanoSight: "15:42:48  01/04/2021" (day/month/year)
    (re.compile(r"(\d{1,2}):(\d{2}):(\d{2})\s+(\d{1,2})/(\d{1,2})/(\d{4})"), "hmsdmy"),
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"), "dmyhms"),
    # ISO date with optional time
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T\s]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"), "ymdhms"),
    # compact timestamp "20210401_154248"
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?!\d)"), "ymdhms"),
    (re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"), "dmyhms"),
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), "dmyhms"),
)


def parse_datetime(text: str | None) -> datetime | None:
    """Parse the date formats instruments write; None when absent or not a valid date."""
    if not text:
        return None
    for pattern, order in _DATE_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        parts = [int(g) if g else 0 for g in match.groups()]
        if order == "hmsdmy":
            hour, minute, second, day, month, year = parts
        elif order == "dmyhms":
            day, month, year, *rest = parts
            hour, minute, second = [*rest, 0, 0, 0][:3]
        else:
            year, month, day, *rest = parts
            hour, minute, second = [*rest, 0, 0, 0][:3]
        try:
            return datetime(year, month, day, hour, minute, second)
        except ValueError:
            return None
    return None


def quantiles_from_bins(
    positions: np.ndarray,
    weights: np.ndarray,
    probabilities: tuple[float, ...] = (0.1, 0.5, 0.9),
    start: float | None = None,
) -> list[float | None]:
    """Quantiles by linear interpolation of the cumulative known at ``positions``.

    The cumulative of ``weights`` is taken to reach its value at ``positions`` (the upper bin
    edges for NanoSight, the bin centres for ZetaView). ``start`` is where the cumulative is
    zero (NanoSight: the lower edge of the first bin); without it the first position is used.
    """
    positions = np.asarray(positions, dtype=float)
    weights = np.clip(np.nan_to_num(np.asarray(weights, dtype=float)), 0.0, None)
    total = float(weights.sum())
    if positions.size == 0 or total <= 0.0:
        return [None for _ in probabilities]
    cumulative = np.cumsum(weights) / total
    if start is not None:
        positions = np.concatenate([[start], positions])
        cumulative = np.concatenate([[0.0], cumulative])
    result: list[float | None] = []
    for prob in probabilities:
        idx = int(np.searchsorted(cumulative, prob - 1e-12, side="left"))
        idx = min(idx, positions.size - 1)
        if idx == 0:
            result.append(float(positions[0]))
            continue
        c0, c1 = cumulative[idx - 1], cumulative[idx]
        x0, x1 = positions[idx - 1], positions[idx]
        frac = 0.0 if c1 <= c0 else (prob - c0) / (c1 - c0)
        result.append(float(x0 + min(max(frac, 0.0), 1.0) * (x1 - x0)))
    return result


def moments_from_bins(centres: np.ndarray, weights: np.ndarray) -> tuple[float | None, ...]:
    """(mean, sd, mode) of a binned number distribution; Nones when it is empty."""
    centres = np.asarray(centres, dtype=float)
    weights = np.clip(np.nan_to_num(np.asarray(weights, dtype=float)), 0.0, None)
    total = float(weights.sum())
    if centres.size == 0 or total <= 0.0:
        return None, None, None
    mean = float(np.sum(centres * weights) / total)
    sd = float(math.sqrt(max(float(np.sum(weights * (centres - mean) ** 2) / total), 0.0)))
    mode = float(centres[int(np.argmax(weights))])
    return mean, sd, mode


def density_from_weights(weights: np.ndarray) -> list[float]:
    """Normalise non-negative bin weights to fractions summing to 1; [] when there are none."""
    weights = np.clip(np.nan_to_num(np.asarray(weights, dtype=float)), 0.0, None)
    total = float(weights.sum())
    if weights.size == 0 or total <= 0.0 or not math.isfinite(total):
        return []
    density = weights / total
    density[-1] += 1.0 - float(density.sum())  # exact sum for the schema check
    density = np.clip(density, 0.0, None)
    return [float(v) for v in density]


def edges_from_centres(centres: np.ndarray) -> np.ndarray:
    """Bin edges from contiguous bin centres (midpoints; outer edges mirrored)."""
    centres = np.asarray(centres, dtype=float)
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = 0.5 * (centres[:-1] + centres[1:])
    first = centres[0] - (mids[0] - centres[0])
    last = centres[-1] + (centres[-1] - mids[-1])
    return np.concatenate([[first], mids, [last]])
