"""Checks that keep an analysis from giving a wrong answer with a clean exit.

Each check either passes silently, or raises an :class:`~exocheck.errors.ExocheckError` with one
line the user can act on:

* :func:`check_polarity`: bright particles on a dark background (scattering NTA) or dark ones on a
  bright background (bright field), read from the frames and compared with ``invert``;
* :func:`calibration_optics`: a bead calibration used on other optics (pixel size, frame rate,
  exposure, camera gain, wavelength) is refused unless the user gives a reason;
* :func:`check_dilution` and :func:`check_result`: physical bounds on inputs and outputs;
* :func:`check_duplicate_inputs`: the same raw data given twice as two replicates.

:func:`sha256_input` is the checksum of an input, a frame folder included.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from exocheck.errors import AnalysisError, ParameterError
from exocheck.optics import optics_differences

#: Frames read to judge polarity (spread over the first ones; a few hundred kB to a few MB).
POLARITY_FRAMES = 64
#: One tail of the background-subtracted pixels must outweigh the other this many times to count.
POLARITY_RATIO = 3.0
#: Largest dilution factor taken as a real dilution (serial dilutions of a few 10³ are usual).
MAX_DILUTION = 1e6
#: Volume fraction of particles that no suspension can exceed (random close packing of spheres).
MAX_VOLUME_FRACTION = 0.64
#: Largest diameter a Brownian-motion measurement can size (beyond it particles settle and move
#: too little over a video); NTA instruments quote 10 nm to 1–2 µm.
MAX_DIAMETER_NM = 10_000.0
NM3_TO_ML = 1e-21


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
    stack = np.ascontiguousarray(frames)
    residual = stack.astype(np.float32) - static_background(stack)
    centre = float(np.median(residual))
    spread = 1.4826 * float(np.median(np.abs(residual - centre)))
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


def check_dilution(dilution_factor: float | None) -> None:
    """A dilution factor between 1 (undiluted) and :data:`MAX_DILUTION`."""
    if dilution_factor is None:
        return
    if not (math.isfinite(dilution_factor) and 1.0 <= dilution_factor <= MAX_DILUTION):
        raise ParameterError(
            f"dilution factor must be between 1 and {MAX_DILUTION:.0e}, got {dilution_factor:g}"
        )


def check_result(
    particles_per_ml: float, d50_nm: float | None, mode_nm: float | None, edges_nm: Sequence[float]
) -> None:
    """Physical bounds on a result: a finite concentration whose particles fit in the volume, and
    sizes inside the measurable range, away from the edge of the diameter grid."""
    if not math.isfinite(particles_per_ml) or particles_per_ml < 0:
        raise AnalysisError(f"the concentration is not a finite number ({particles_per_ml:g} /mL)")
    if d50_nm is not None and d50_nm > 0:
        fraction = particles_per_ml * math.pi / 6.0 * d50_nm**3 * NM3_TO_ML
        if fraction > MAX_VOLUME_FRACTION:
            raise AnalysisError(
                f"{particles_per_ml:.3g} particles/mL of {d50_nm:.0f} nm would fill "
                f"{fraction:.3g} times the volume ({MAX_VOLUME_FRACTION:.0%} is the most spheres "
                "can fill): check the dilution factor and the calibration"
            )
    edges = np.asarray(edges_nm, dtype=float)
    for name, value in (("D50", d50_nm), ("mode", mode_nm)):
        if value is None:
            continue
        at_edge = edges.size >= 3 and (value >= edges[-2] or value <= edges[1])
        if value > MAX_DIAMETER_NM or at_edge:
            raise AnalysisError(
                f"{name} {value:.4g} nm lies at the edge of the measurable sizes "
                f"({edges[0]:.3g}–{edges[-1]:.3g} nm): wrong polarity (--invert), pixel size or "
                "frame rate?"
            )


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
