"""Particle concentration: particles per frame in the analysed area ÷ effective detection volume.

The detection volume is the analysed area times an effective depth. A particle is detected while
its peak signal exceeds the threshold T. With an illumination/defocus profile that falls off as a
Gaussian in z, a particle whose in-focus peak is B₀ stays above T over a depth
``2 s √(2 ln(B₀/T))``: brighter particles are seen in a thicker slab. Its depth relative to a
calibration bead (peak B_b) is therefore

    depth(B₀) = depth_b · √( ln(B₀/T) / ln(B_b/T) ),

which needs neither s nor the gain. ``exocheck calibrate`` measures depth_b from a bead standard of
known concentration (ISO 19430 practice). Each detected particle is then counted with the inverse
of its own depth, so a sample of dimmer particles than the beads is not under-counted. Without a
calibration a nominal depth is assumed and the result is marked ``calibrated: false``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from exocheck.errors import FormatError, ParameterError

NOMINAL_DEPTH_UM = 10.0
"""Nominal depth of the detection slab of a NanoSight-class instrument (its quoted ~10 µm)."""

CALIBRATION_SCHEMA = "exocheck.calibration/1"


@dataclass(frozen=True)
class Calibration:
    """Effective detection depth measured on a bead standard.

    Attributes
    ----------
    depth_um : float
        Effective depth of the detection slab for the calibration beads.
    bead_brightness_ratio : float
        Typical in-focus peak of the beads over the detection threshold, B_b / T.
    bead_diameter_nm, known_concentration_per_ml : float
        The standard used.
    pixel_size_um, fps, temperature_c : float
        Optics and conditions of the calibration video.
    """

    depth_um: float
    bead_brightness_ratio: float
    bead_diameter_nm: float | None
    known_concentration_per_ml: float
    pixel_size_um: float
    fps: float
    temperature_c: float
    source_sha256: str = ""

    def save(self, path: str | Path) -> None:
        from exocheck.records import atomic_write_text

        data = {"schema": CALIBRATION_SCHEMA, **asdict(self)}
        atomic_write_text(Path(path), json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FormatError(f"{path}: cannot read calibration ({exc.strerror})") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise FormatError(f"{path}: not a JSON calibration file") from None
        if not isinstance(data, dict) or data.pop("schema", None) != CALIBRATION_SCHEMA:
            raise FormatError(f"{path}: not an exocheck calibration (schema {CALIBRATION_SCHEMA})")
        try:
            cal = cls(**data)
        except TypeError as exc:
            raise FormatError(f"{path}: invalid calibration: {exc}") from None
        if not (cal.depth_um > 0 and cal.bead_brightness_ratio > 1):
            raise FormatError(f"{path}: calibration values out of range")
        return cal


def track_brightness_ratio(features: pd.DataFrame, threshold: float) -> pd.Series:
    """In-focus peak over threshold per particle, estimated by the track's brightest frame."""
    if not threshold > 0:
        raise ParameterError("threshold must be > 0")
    return features.groupby("particle")["signal"].max() / threshold


def relative_depth(ratio: np.ndarray | pd.Series, reference_ratio: float) -> np.ndarray:
    """Detection depth of particles with peak/threshold ``ratio`` relative to the reference."""
    r = np.clip(np.asarray(ratio, float), 1.0 + 1e-6, None)
    ref = max(reference_ratio, 1.0 + 1e-6)
    return np.sqrt(np.log(r) / math.log(ref))


def analysed_area_um2(width_px: int, height_px: int, border_px: int, pixel_size_um: float) -> float:
    """Area in which particles can be detected (the border of the centroid window excluded)."""
    return max(width_px - 2 * border_px, 1) * max(height_px - 2 * border_px, 1) * pixel_size_um**2


def concentration_per_ml(
    features: pd.DataFrame,
    n_frames: int,
    area_um2: float,
    threshold: float,
    calibration: Calibration | None,
) -> tuple[float, float]:
    """Concentration in the measured suspension and the particles per frame used for it.

    ``features`` are the tracked features (column ``particle``) counted as particles. Each counts
    ``1 / depth`` of its particle's brightness class; without calibration the depth is nominal.
    """
    if n_frames <= 0:
        raise ParameterError("n_frames must be > 0")
    per_frame = len(features) / n_frames
    if calibration is None:
        volume_ml = area_um2 * NOMINAL_DEPTH_UM * 1e-12
        return per_frame / volume_ml, per_frame
    ratio = track_brightness_ratio(features, threshold)
    depth = calibration.depth_um * relative_depth(ratio, calibration.bead_brightness_ratio)
    depth_of_feature = features["particle"].map(pd.Series(depth, index=ratio.index)).to_numpy()
    inverse_volume_sum = np.sum(1.0 / (area_um2 * depth_of_feature * 1e-12))
    return float(inverse_volume_sum / n_frames), per_frame
