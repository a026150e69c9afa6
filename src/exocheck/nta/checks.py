"""Checks that keep an analysis from giving a wrong answer with a clean exit.

Each check either passes silently, or raises an :class:`~exocheck.errors.ExocheckError` with one
line the user can act on:

* :func:`check_polarity`: bright particles on a dark background (scattering NTA) or dark ones on a
  bright background (bright field), read from the frames and compared with ``invert``;
* :func:`calibration_optics`: a bead calibration used on other optics (pixel size, frame rate,
  exposure, camera gain, wavelength) is refused unless the user gives a reason;
* :func:`check_dilution` and :func:`check_result`: physical bounds on inputs and outputs;
* :func:`check_duplicate_inputs`: the same raw data given twice as two replicates;
* :func:`file_contradictions`: a frame rate, pixel size or exposure given against what the video
  file itself states is refused unless the user gives a reason (``--override``).

:func:`sha256_input` is the checksum of an input, a frame folder included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from exocheck.errors import ParameterError
from exocheck.optics import OPTICS_TOLERANCE, optics_differences
from exocheck.plausibility import (  # noqa: F401  (part of this module's interface)
    MAX_DILUTION,
    MAX_VOLUME_FRACTION,
    check_dilution,
    check_result,
)

#: Frames read to judge polarity (spread over the first ones; a few hundred kB to a few MB).
POLARITY_FRAMES = 64
#: One tail of the background-subtracted pixels must outweigh the other this many times to count.
POLARITY_RATIO = 3.0


def sha256_input(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a video file; for a frame folder, of its frames' names and contents in order.

    A folder's checksum is that of the lines ``name  sha256(file)`` of its PNG/TIFF frames in the
    order they are read, so renaming, reordering or changing any frame changes it.
    """
    from exocheck.io._common import natural_key
    from exocheck.io._frames import FRAME_SUFFIXES
    from exocheck.records import sha256_file

    path = Path(path)
    if not path.is_dir():
        return sha256_file(path, chunk_bytes)
    frames = sorted(
        (f for f in path.iterdir()
         if f.suffix.lower() in FRAME_SUFFIXES and not f.name.startswith(".") and f.is_file()),
        key=lambda f: natural_key(f.name),
    )  # fmt: skip
    digest = hashlib.sha256()
    for f in frames:
        digest.update(f"{f.name}  {sha256_file(f, chunk_bytes)}\n".encode())
    return digest.hexdigest()


def polarity(frames: np.ndarray) -> str | None:
    """``"bright"`` (particles brighter than the background, scattering NTA), ``"dark"`` (bright
    field) or ``None`` when the frames do not tell.

    The static background (temporal median) is subtracted; particles are what stands out from it.
    The summed excess of pixels more than 5 robust SDs above the background is set against that
    of pixels as far below it: scattering particles give only the upper tail, absorbing ones in
    bright field mostly the lower (with a weaker bright ring).
    """
    from exocheck.nta.locate import static_background

    if frames.ndim != 3 or frames.shape[0] < 3:
        return None
    # every second pixel of every second row: a particle's spot spans several pixels, so none is
    # missed, and the check costs a quarter (it runs before detection starts)
    stack = np.ascontiguousarray(frames[:, ::2, ::2])
    residual = stack.astype(np.float32) - static_background(stack)
    # centre and spread from every 7th pixel: medians of ~3·10⁶ values are as good as of all
    # 2·10⁷ and cost a tenth of the time
    sample = residual.ravel()[::7]
    centre = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - centre)))
    cut = 5.0 * max(spread, 0.5)
    upper = float(np.clip(residual - centre - cut, 0, None).sum())
    lower = float(np.clip(centre - residual - cut, 0, None).sum())
    if upper > POLARITY_RATIO * lower and upper > 0:
        return "bright"
    if lower > POLARITY_RATIO * upper and lower > 0:
        return "dark"
    return None


def check_polarity(path: str | Path, invert: bool) -> None:
    """Refuse a video whose particles have the other polarity than ``invert`` says.

    Analysed with the wrong polarity, the background's noise is tracked instead of the particles:
    the result is sizes at the edge of the grid, with a clean exit. Raises
    :class:`~exocheck.errors.ParameterError` naming the option to change.
    """
    from exocheck.io.video import open_video

    path = Path(path)
    with open_video(path) as video:
        n = min(video.meta.n_frames, POLARITY_FRAMES)
        frames = video.read(0, n)
    seen = polarity(frames)
    if seen == "dark" and not invert:
        raise ParameterError(
            f"{path}: the particles are darker than the background (a bright-field video): "
            "analyse it with --invert"
        )
    if seen == "bright" and invert:
        raise ParameterError(
            f"{path}: the particles are brighter than the background (light scattering): "
            "analyse it without --invert"
        )


def calibration_optics(
    calibration, video_optics: dict[str, float | None], override_reason: str | None
) -> str | None:
    """Compare a calibration's optics with a video's.

    Returns ``None`` when they match, the differences in words when they do not and
    ``override_reason`` is given (the record then keeps both, and the concentration is not used
    for release), and raises :class:`~exocheck.errors.ParameterError` otherwise.
    """
    from dataclasses import asdict

    differences = optics_differences(asdict(calibration), video_optics)
    if not differences:
        return None
    text = "; ".join(differences)
    if not (override_reason and override_reason.strip()):
        raise ParameterError(
            f"the calibration was made on other optics ({text}): calibrate on these optics, or "
            "give --calibration-override REASON to use it anyway (concentration then not "
            "used for release)"
        )
    return text


def check_duplicate_inputs(
    names: Sequence[str], checksums: Sequence[str], allow_reuse: str | None
) -> list[str]:
    """Refuse the same raw data given twice as replicates (same SHA-256), unless a reason is given.

    Returns the duplicates in words (empty when there are none); raises
    :class:`~exocheck.errors.ParameterError` when there are some and no reason.
    """
    seen: dict[str, str] = {}
    repeated = []
    for name, sha in zip(names, checksums, strict=True):
        if not sha:
            continue
        if sha in seen:
            repeated.append(f"{name} = {seen[sha]} (SHA-256 {sha[:12]}…)")
        else:
            seen[sha] = name
    if repeated and not (allow_reuse and allow_reuse.strip()):
        raise ParameterError(
            f"the same data given twice: {'; '.join(repeated)}; replicates must be different "
            "recordings (or give --allow-reuse REASON)"
        )
    return repeated


#: settings a video file may state, which a value given with it must not contradict (flag, unit)
FILE_SETTINGS: dict[str, tuple[str, str]] = {
    "fps": ("--fps", "fps"),
    "pixel_size_um": ("--pixel-size-um", "µm"),
    "exposure_ms": ("--exposure-ms", "ms"),
}


def file_contradictions(path: str | Path, given: object) -> list[str]:
    """The settings in ``given`` (an object with ``fps``, ``pixel_size_um``, ``exposure_ms``;
    None: not given) that contradict what the video file states, in words.

    Values within the rounding of :data:`exocheck.optics.OPTICS_TOLERANCE` agree; a setting the
    file does not state cannot be contradicted. Returns e.g.
    ``["--fps 3 contradicts the file's 30 fps"]``.
    """
    from exocheck.io.video import open_video

    with open_video(Path(path)) as video:
        meta = video.meta
    out = []
    for name, (flag, unit) in FILE_SETTINGS.items():
        value, stated = getattr(given, name, None), getattr(meta, name)
        if value is None or stated is None or not stated > 0:
            continue
        if abs(value - stated) > OPTICS_TOLERANCE[name] * stated:
            out.append(f"{flag} {value:g} contradicts the file's {stated:g} {unit}")
    return out


def check_override(differences: Sequence[str], override: str | None) -> list[str]:
    """Refuse ``differences`` (settings given against the file or the method, in words) unless
    ``override`` gives the reason; returns them when accepted (empty when there are none)."""
    if differences and not (override and override.strip()):
        raise ParameterError(
            f"{'; '.join(differences)}: give --override REASON to use the value given (the "
            "reason is recorded)"
        )
    return list(differences)


def video_contradictions(paths: Sequence[str | Path], given: object) -> list[str]:
    """:func:`file_contradictions` of every video, each named by its file."""
    return [f"{Path(p).name}: {d}" for p in paths for d in file_contradictions(p, given)]
