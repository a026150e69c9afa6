"""Physical bounds on what goes into and comes out of a measurement.

A number outside these bounds is a mistake (a dilution typed with the wrong exponent, a detection
volume from the wrong calibration, the noise of a wrong-polarity video tracked as particles), not a
result; it is refused with one line instead of being reported. Used by the engine
(:mod:`exocheck.nta.checks`) and by the store for every measurement record it accepts, whatever
made it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from exocheck.errors import AnalysisError, ParameterError

#: Largest dilution factor taken as a real dilution (serial dilutions of a few 10³ are usual).
MAX_DILUTION = 1e6
#: Volume fraction of particles that no suspension can exceed (random close packing of spheres).
MAX_VOLUME_FRACTION = 0.64
#: Largest diameter a Brownian-motion measurement can size (beyond it particles settle and move
#: too little over a video); NTA instruments quote 10 nm to 1–2 µm.
MAX_DIAMETER_NM = 10_000.0
NM3_TO_ML = 1e-21


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


def check_record(record) -> None:
    """The bounds on a stored measurement record (:class:`~exocheck.records.Measurement`):
    dilution, and a finite concentration whose particles fit in the volume."""
    check_dilution(record.dilution_factor)
    conc = record.concentration.particles_per_ml
    if conc is not None:
        check_result(conc, record.size.d50_nm, None, [])
