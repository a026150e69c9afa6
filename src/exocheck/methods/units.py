"""Unit sense: a value far outside what is physical for its unit was probably typed in another.

An NTA pixel size is a fraction of a micrometre (0.05–2 µm/px on the instruments in use); typed
in nanometres (166 for 0.166 µm) every particle is a thousand times larger than it is and the
analysis finds none. A frame rate below 1 fps is a frame interval in seconds; a temperature above
100 °C in water is kelvin or Fahrenheit; a bead diameter of 100 000 nm is picometres. Each rule
below names the bound, why, and the unit probably meant, with the value converted::

    check_value("pixel_size_um", 166)
    # ParameterError: --pixel-size-um 166: above 5 µm; was it nm? (0.166 µm)

:func:`check_value` is the one rule; the command line, the REST API and method records call it
(:func:`check_values` for several at once) before a value is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from exocheck.errors import ParameterError


@dataclass(frozen=True)
class _Bound:
    """A bound beyond which a value is not physical in its unit, and the unit probably meant."""

    limit: float
    unit: str  # the value's own unit, for the message
    meant: str  # the unit probably meant
    convert: Callable[[float], float]  # the value in its own unit, had it been typed in ``meant``


#: per quantity: (lower bound or None, upper bound or None). The bounds are generous: a value
#: inside them may still be wrong, one outside them is not in the unit its name says.
RULES: dict[str, tuple[_Bound | None, _Bound | None]] = {
    # NTA cameras image 0.05–2 µm per pixel (20×–40× objectives, 5–10 µm camera pixels)
    "pixel_size_um": (
        _Bound(0.005, "µm", "mm", lambda v: v * 1000.0),
        _Bound(5.0, "µm", "nm", lambda v: v / 1000.0),
    ),
    # NTA needs a few frames per second to follow Brownian motion; below 1 it is an interval
    "fps": (_Bound(1.0, "fps", "the frame interval in s", lambda v: 1.0 / v), None),
    # liquid water, the medium of every NTA sample, lies between 0 and 100 °C
    "temperature_c": (None, _Bound(100.0, "°C", "K or °F", lambda v: v)),
    # an exposure is shorter than a frame (≤ 1 s at ≥ 1 fps); above it, microseconds were typed
    "exposure_ms": (
        _Bound(0.001, "ms", "s", lambda v: v * 1000.0),
        _Bound(1000.0, "ms", "µs", lambda v: v / 1000.0),
    ),
    # particles NTA sizes: ~10 nm to ~20 µm; certified bead standards 20 nm – 10 µm
    "diameter_nm": (
        _Bound(1.0, "nm", "µm", lambda v: v * 1000.0),
        _Bound(20000.0, "nm", "pm", lambda v: v / 1000.0),
    ),
    # lasers of NTA instruments: 375–850 nm
    "wavelength_nm": (
        _Bound(100.0, "nm", "µm", lambda v: v * 1000.0),
        _Bound(5000.0, "nm", "pm", lambda v: v / 1000.0),
    ),
    # NTA media: 0.3–100 mPa·s (water 0.89 at 25 °C, 60 % glycerol 11); in a medium above
    # 100 mPa·s a 100 nm particle moves under 0.1 pixel per frame: nothing to size
    "viscosity_mpa_s": (
        _Bound(0.05, "mPa·s", "Pa·s", lambda v: v * 1000.0),
        _Bound(100.0, "mPa·s", "µPa·s", lambda v: v / 1000.0),
    ),
}

#: names that are checked as another quantity (a bead's diameter is a diameter)
ALIASES = {"bead_diameter_nm": "diameter_nm", "certified_diameter_nm": "diameter_nm"}


def _temperature_meant(value: float) -> str:
    """The temperature in °C had ``value`` been kelvin (above 200) or Fahrenheit."""
    if value >= 200.0:
        return f"was it K? ({value - 273.15:.4g} °C)"
    return f"was it °F? ({(value - 32.0) * 5.0 / 9.0:.4g} °C)"


def label_of(name: str, style: Literal["flag", "field"] = "flag") -> str:
    """How a message names the value: ``--pixel-size-um`` (command line) or ``pixel_size_um``
    (a form field, a JSON key, a method's setting)."""
    return f"--{name.replace('_', '-')}" if style == "flag" else name


def check_value(
    name: str, value: float | None, *, style: Literal["flag", "field"] = "flag"
) -> None:
    """Refuse a value outside physical sense for the unit its ``name`` says, naming the unit
    probably meant.

    Parameters
    ----------
    name : str
        The quantity with its unit in the name (``pixel_size_um``, ``fps``, ``temperature_c``,
        ``exposure_ms``, ``bead_diameter_nm``, ``wavelength_nm``, ``viscosity_mpa_s``); other
        names are not checked.
    value : float or None
        None (not given) passes.
    style : {"flag", "field"}
        Name the value as a command-line flag or as a field (:func:`label_of`).

    Raises
    ------
    ParameterError
        ``--pixel-size-um 166: above 5 µm; was it nm? (0.166 µm)``.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if not math.isfinite(value) or (value <= 0 and name != "temperature_c"):
        return  # not a number > 0: the caller's own check says so
    low, high = RULES.get(ALIASES.get(name, name), (None, None))
    label = label_of(name, style)
    if high is not None and value > high.limit:
        if name == "temperature_c":
            hint = _temperature_meant(value)
        else:
            hint = f"was it {high.meant}? ({high.convert(value):.4g} {high.unit})"
        raise ParameterError(f"{label} {value:g}: above {high.limit:g} {high.unit}; {hint}")
    if low is not None and value < low.limit:
        if name == "fps":
            hint = f"was it {low.meant}? ({low.convert(value):.4g} fps)"
        else:
            hint = f"was it {low.meant}? ({low.convert(value):.4g} {low.unit})"
        raise ParameterError(f"{label} {value:g}: below {low.limit:g} {low.unit}; {hint}")


def check_values(values: Mapping[str, object], *, style: Literal["flag", "field"] = "flag") -> None:
    """:func:`check_value` of every named value (None and unchecked names pass)."""
    for name, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            check_value(name, float(value), style=style)
