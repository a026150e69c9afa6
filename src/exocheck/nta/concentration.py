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
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from exocheck.errors import FormatError, ParameterError

NOMINAL_DEPTH_UM = 10.0
"""Nominal depth of the detection slab of a NanoSight-class instrument (its quoted ~10 µm)."""

CALIBRATION_SCHEMA = "exocheck.calibration/1"

MIN_RATIO = 1.5
"""Smallest in-focus peak-over-threshold credited to a detected particle."""


@dataclass(frozen=True)
class Calibration:
    """Effective detection depth measured on a bead standard.

    Attributes
    ----------
    depth_um : float
        Effective depth of the detection slab for the calibration beads.
    bead_brightness_ratio : float
        Typical in-focus peak of the beads over the detection threshold, B_b / T.
    bead_refractive_index : float
        Refractive index of the bead material (polystyrene 1.59), for Mie brightness scaling.
    bead_diameter_nm, known_concentration_per_ml : float
        The standard used.
    pixel_size_um, fps, temperature_c : float
        Optics and conditions of the calibration video.
    exposure_ms, camera_gain, wavelength_nm : float or None
        The rest of the optics the calibration holds for, where known. A calibration is used
        only on the same optics (see :mod:`exocheck.optics`).
    measured_d10_nm, measured_d50_nm, measured_d90_nm : float or None
        The beads' size distribution as measured on the calibration video (what the acceptance
        check of :mod:`exocheck.methods.calibrations` holds against the certified diameter).
    standard_lot, standard_expiry : str or None
        The bead standard's lot and expiry date (ISO), where stated.
    made_at, valid_until : str or None
        When the calibration was made and until when it may be used (ISO, UTC); a measurement
        made after ``valid_until`` has a concentration from an expired calibration.
    calibration_id : int or None
        The calibration's number in the store, for a stored calibration.
    instrument_serial : str or None
        The instrument it was made on, where named.
    override : str or None
        The reason recorded for settings given against the video's own metadata.
    """

    depth_um: float
    bead_brightness_ratio: float
    bead_diameter_nm: float | None
    known_concentration_per_ml: float
    pixel_size_um: float
    fps: float
    temperature_c: float
    source_sha256: str = ""
    bead_refractive_index: float = 1.59
    exposure_ms: float | None = None
    camera_gain: float | None = None
    wavelength_nm: float | None = None
    measured_d10_nm: float | None = None
    measured_d50_nm: float | None = None
    measured_d90_nm: float | None = None
    standard_lot: str | None = None
    standard_expiry: str | None = None
    made_at: str | None = None
    valid_until: str | None = None
    calibration_id: int | None = None
    instrument_serial: str | None = None
    override: str | None = None

    def optics(self) -> dict[str, float | None]:
        """The optics this calibration holds for."""
        return {
            "pixel_size_um": self.pixel_size_um,
            "fps": self.fps,
            "exposure_ms": self.exposure_ms,
            "camera_gain": self.camera_gain,
            "wavelength_nm": self.wavelength_nm,
        }

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
        known = {f.name: f for f in fields(cls)}
        missing = [n for n, f in known.items() if f.default is MISSING and n not in data]
        unknown = [n for n in data if n not in known]
        if missing or unknown:
            what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
            raise FormatError(f"{path}: invalid calibration: {what}")
        for name, value in data.items():
            if value is None and "None" in str(known[name].type):  # an optional field
                continue
            if name in _TEXT_FIELDS:
                if not isinstance(value, str):
                    raise FormatError(f"{path}: invalid calibration: {name} is not text")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FormatError(f"{path}: invalid calibration: {name} is not a number")
            if not math.isfinite(value):
                raise FormatError(f"{path}: invalid calibration: {name} is {value}")
        cal = cls(**data)
        if not (cal.depth_um > 0 and cal.bead_brightness_ratio > 1):
            raise FormatError(f"{path}: calibration values out of range")
        return cal


#: the calibration's fields that hold text (every other one holds a number)
_TEXT_FIELDS = frozenset(
    {
        "source_sha256",
        "standard_lot",
        "standard_expiry",
        "made_at",
        "valid_until",
        "instrument_serial",
        "override",
    }
)


def track_brightness_ratio(features: pd.DataFrame, threshold: float) -> pd.Series:
    """In-focus peak over threshold per particle, estimated by the track's brightest frame."""
    if not threshold > 0:
        raise ParameterError("threshold must be > 0")
    return features.groupby("particle")["signal"].max() / threshold


def relative_depth(ratio: np.ndarray | pd.Series, reference_ratio: float) -> np.ndarray:
    """Detection depth of particles with peak/threshold ``ratio`` relative to the reference."""
    # A detected particle is, in focus, clearly above threshold; a ratio near 1 (a track that
    # never crossed focus, or a size estimate far off) would give a vanishing depth and an
    # unbounded weight, so ratios are floored at MIN_RATIO.
    r = np.clip(np.asarray(ratio, float), MIN_RATIO, None)
    ref = max(reference_ratio, MIN_RATIO)
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
    brightness_ratio: pd.Series | None = None,
) -> tuple[float, float]:
    """Concentration in the measured suspension and the particles per frame used for it.

    ``features`` are the tracked features (column ``particle``) counted as particles. Each counts
    ``1 / depth`` of its particle's brightness class; without calibration the depth is nominal.
    ``brightness_ratio`` (in-focus peak over threshold per particle) defaults to each track's
    brightest frame; :func:`mie_brightness_ratio` gives a saturation-free alternative. Particles
    without a ratio count with the mean inverse depth of those that have one.
    """
    if n_frames <= 0:
        raise ParameterError("n_frames must be > 0")
    per_frame = len(features) / n_frames
    if calibration is None:
        volume_ml = area_um2 * NOMINAL_DEPTH_UM * 1e-12
        return per_frame / volume_ml, per_frame
    ratio = (
        track_brightness_ratio(features, threshold)
        if brightness_ratio is None
        else brightness_ratio
    )
    inverse_depth = 1.0 / (
        calibration.depth_um * relative_depth(ratio.to_numpy(), calibration.bead_brightness_ratio)
    )
    per_particle = pd.Series(inverse_depth, index=ratio.index)
    weights = features["particle"].map(per_particle)
    weights = weights.fillna(float(np.average(weights.dropna()))) if weights.notna().any() else None
    if weights is None:
        return per_frame / (area_um2 * calibration.depth_um * 1e-12), per_frame
    return float(weights.sum() / (area_um2 * 1e-12) / n_frames), per_frame


def mie_brightness_ratio(
    diameter_nm: pd.Series, refractive_index: float, calibration: Calibration
) -> pd.Series:
    """Peak-over-threshold per particle predicted from its size, scaled from the beads by Mie.

    B₀(d)/T = (B_b/T) · C_sca(d, n) / C_sca(d_b, n_b). Unlike a track's brightest pixel this does
    not saturate at the camera's full scale, which otherwise makes large particles look no
    brighter than the beads and so under-corrects their thicker detection slab.
    """
    from exocheck.physics import scattering_cross_section_nm2, scattering_cross_sections_nm2

    if calibration.bead_diameter_nm is None:
        raise ParameterError("the calibration has no bead diameter for Mie scaling")
    c_bead = scattering_cross_section_nm2(
        calibration.bead_diameter_nm, calibration.bead_refractive_index
    )
    c = scattering_cross_sections_nm2(diameter_nm.to_numpy(), refractive_index)
    return pd.Series(calibration.bead_brightness_ratio * c / c_bead, index=diameter_nm.index)
