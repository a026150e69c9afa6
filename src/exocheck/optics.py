"""The optics a bead calibration holds for, and whether a measurement was made on the same.

A detection-volume calibration is a property of the optics and camera settings it was measured
with: pixel size (magnification), frame rate, exposure, camera gain and laser wavelength change
how bright a particle looks against the threshold and therefore the depth in which it is seen.
A calibration is valid only for measurements on the same optics; these helpers compare the two.
They sit below the engine and the QC layer, which both use them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: Relative tolerance per optical setting: differences within these are rounding, not new optics.
OPTICS_TOLERANCE = {
    "pixel_size_um": 0.02,
    "fps": 0.01,
    "exposure_ms": 0.05,
    "camera_gain": 0.01,
    "wavelength_nm": 0.01,
}

_WORDS = {
    "pixel_size_um": ("pixel size", " µm/px"),
    "fps": ("frame rate", " fps"),
    "exposure_ms": ("exposure", " ms"),
    "camera_gain": ("camera gain", ""),
    "wavelength_nm": ("wavelength", " nm"),
}


def optics_differences(
    calibrated: Mapping[str, object], measured: Mapping[str, object]
) -> list[str]:
    """The optical settings on which a measurement differs from its calibration, in words.

    Settings unknown on either side are not compared. Returns e.g.
    ``["pixel size 0.35 µm/px (calibration 0.166 µm/px)"]``; empty when the optics match.
    """
    out = []
    for key, tolerance in OPTICS_TOLERANCE.items():
        cal, now = calibrated.get(key), measured.get(key)
        if not isinstance(cal, int | float) or not isinstance(now, int | float):
            continue
        if not (math.isfinite(cal) and math.isfinite(now)) or cal <= 0:
            continue
        if abs(now - cal) > tolerance * abs(cal):
            name, unit = _WORDS[key]
            out.append(f"{name} {now:.4g}{unit} (calibration {cal:.4g}{unit})")
    return out
