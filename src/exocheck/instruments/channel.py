"""The recording channel of an imported measurement: scatter, or fluorescence through a filter.

Instruments state the channel in different places: ZetaView in its header
(``Filter Wavelength nm:`` is ``Scatter`` or the filter's wavelength), ZetaView per-track FCS
exports in keywords or only in the file name, NanoSight summaries in a filter row when the
instrument has a filter wheel. The helpers here turn those statements into a
:class:`~exocheck.records.Channel` and collect the settings that set a channel's detection
volume under normalised names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from exocheck.instruments._text import first_number, norm_key, to_float
from exocheck.records import Channel

#: Filter values that mean "no filter in the light path".
_NO_FILTER = {"scatter", "none", "no filter", "no", "off", "empty", "open", "-", "sc", "scattering"}
#: Values that say nothing (ZetaView writes NaN for settings it did not record).
_UNSTATED = {"", "nan", "n/a", "na", "unknown", "not recorded"}
#: Emission filters on NTA instruments are long-pass edges between the violet laser (405 nm)
#: and the near infrared; a number outside this range is not a filter wavelength.
FILTER_RANGE_NM = (400.0, 900.0)

#: ZetaView header keys (normalised) -> settings names that set a channel's detection volume.
ZETAVIEW_SETTINGS = {
    "sensitivity": "sensitivity",
    "shutter": "shutter",
    "gain": "gain",
    "minimum tracelength": "min_trace_length",
    "minimum trace length": "min_trace_length",
    "minimum brightness": "min_brightness",
    "maximum brightness": "max_brightness",
    "minimum area": "min_area",
    "maximum area": "max_area",
    "tracking radius2": "tracking_radius2",
    "tracking radius 2": "tracking_radius2",
    "lowbleach": "low_bleach",
}


def _stated(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip().strip('"').strip()
    return None if norm_key(text) in _UNSTATED else text


def parse_filter(value: object) -> tuple[str, float | None, str] | None:
    """(mode, filter wavelength nm, the value as stated) of a filter statement; None when the
    value states nothing.

    ``Scatter``, ``None``, ``No filter`` and the like are scatter; a value holding a wavelength
    (``500``, ``500.000000``, ``500 nm LP``, ``565nm long pass``, ``F500``) is fluorescence
    through that filter; any other text names a filter without a wavelength (fluorescence).
    """
    text = _stated(value)
    if text is None:
        return None
    key = norm_key(text)
    if key in _NO_FILTER or key.startswith(("scatter", "no filter")):
        return "scatter", None, text
    number = first_number(text)
    if number is not None and FILTER_RANGE_NM[0] <= number <= FILTER_RANGE_NM[1]:
        return "fluorescence", number, text
    return "fluorescence", None, text


def laser_from_text(value: object) -> float | None:
    """A laser wavelength (nm) from ``488.000000``, ``Blue488``, ``488 nm``; None otherwise."""
    text = _stated(value)
    if text is None:
        return None
    number = first_number(text)
    return number if number is not None and 300.0 <= number <= 1100.0 else None


def channel_from_name(name: str) -> Channel | None:
    """The channel a ZetaView-style file name states, or None.

    ``_F500_`` (an ``F`` and a three-digit wavelength between 400 and 900 nm, between
    separators) is fluorescence through a 500 nm filter; ``_Scatter_`` is scatter. Sample
    names such as ``F8-1000`` (a fraction and a dilution) or ``F5`` are not filters. The laser
    comes from ``_size_488``/``_488_`` when the name has it.
    """
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", name)
    sep = r"(?:^|(?<=[_\-\s.]))"
    end = r"(?=$|[_\-\s.])"
    laser_match = re.search(sep + r"size_(\d{3})" + end, stem, re.IGNORECASE)
    laser = float(laser_match.group(1)) if laser_match else None
    filt = re.search(sep + r"[Ff](\d{3})" + end, stem)
    if filt:
        wavelength = float(filt.group(1))
        if FILTER_RANGE_NM[0] <= wavelength <= FILTER_RANGE_NM[1]:
            return Channel(
                mode="fluorescence",
                laser_wavelength_nm=laser,
                filter_wavelength_nm=wavelength,
                filter_name=filt.group(0),
            )
    if re.search(sep + r"scatter" + end, stem, re.IGNORECASE):
        return Channel(mode="scatter", laser_wavelength_nm=laser, filter_name="Scatter")
    return None


def _camera(text: str) -> dict[str, float]:
    """``FpSec 30 #Cycles 3 FRate 30.000000`` -> frame rate and cycles."""
    found: dict[str, float] = {}
    for name, pattern in (
        ("fpsec", r"FpSec\s*[:=]?\s*([\d.,]+)"),
        ("cycles", r"#?\s*Cycles\s*[:=]?\s*([\d.,]+)"),
        ("frate", r"FRate\s*[:=]?\s*([\d.,]+)"),
    ):
        match = re.search(pattern, text, re.IGNORECASE)
        value = to_float(match.group(1)) if match else None
        if value is not None:
            found[name] = value
    return found


def zetaview_settings(lookup: Callable[[str], str | None]) -> dict[str, float | str]:
    """The detection settings of a ZetaView run under normalised names.

    ``lookup`` returns the stated value of a normalised header key (or keyword), or None.
    Numbers become floats (decimal commas accepted); ``fps`` is the camera's frame rate
    (``FRate``, else ``FpSec`` of the ``Camera:`` line), ``cycles`` its ``#Cycles``.
    """
    settings: dict[str, float | str] = {}
    for key, name in ZETAVIEW_SETTINGS.items():
        if name in settings:
            continue
        text = _stated(lookup(key))
        if text is None:
            continue
        number = to_float(text)
        if number is None:
            number = first_number(text) if re.match(r"^\s*[+-]?[\d.,]", text) else None
        settings[name] = number if number is not None else text
    camera = _stated(lookup("camera"))
    if camera:
        parts = _camera(camera)
        fps = parts.get("frate", parts.get("fpsec"))
        if fps is not None:
            settings["fps"] = fps
        if "fpsec" in parts and "frate" in parts and parts["fpsec"] != parts["frate"]:
            settings["fps_set"] = parts["fpsec"]
        if "cycles" in parts:
            settings["cycles"] = parts["cycles"]
    return dict(sorted(settings.items()))


def zetaview_channel(
    lookup: Callable[[str], str | None], *, absent_is_scatter: bool
) -> tuple[Channel | None, list[str]]:
    """The channel a ZetaView header (or keyword set) states, and warnings.

    ``Filter Wavelength nm:`` ``Scatter`` is scatter; a wavelength is fluorescence through that
    long-pass filter. Without the key, ``absent_is_scatter`` gives scatter with no filter
    fields (the size ``.txt`` of software versions without fluorescence), else None.
    """
    warnings: list[str] = []
    settings = zetaview_settings(lookup)
    laser = laser_from_text(lookup("laser wavelength nm") or lookup("laser wavelength"))
    stated = lookup("filter wavelength nm") or lookup("filter wavelength") or lookup("filter")
    parsed = parse_filter(stated)
    if parsed is None:
        if not absent_is_scatter:
            return None, warnings
        return Channel(mode="scatter", laser_wavelength_nm=laser, settings=settings), warnings
    mode, wavelength, text = parsed
    if mode == "fluorescence" and wavelength is None:
        warnings.append(f"filter {text!r} states no wavelength: fluorescence, filter edge unknown")
    if mode == "fluorescence" and laser is not None and wavelength is not None:
        if wavelength <= laser:
            warnings.append(
                f"filter {wavelength:g} nm does not block the {laser:g} nm laser: a long-pass "
                "filter edge lies above the laser line"
            )
    return (
        Channel(
            mode=mode,  # type: ignore[arg-type]
            laser_wavelength_nm=laser,
            filter_wavelength_nm=wavelength,
            filter_name=text,
            settings=settings,
        ),
        warnings,
    )


def _squash(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", norm_key(key))


def lookup_in(values: Mapping[str, object]) -> Callable[[str], str | None]:
    """A lookup over a mapping whose keys may be spelled ``Filter Wavelength nm``,
    ``FILTER_WAVELENGTH_NM`` or ``FilterWavelengthNm`` alike (case, spaces, underscores and
    punctuation ignored; values that are lists give their first item)."""
    table: dict[str, object] = {}
    for key, value in values.items():
        table.setdefault(_squash(str(key)), value)

    def lookup(key: str) -> str | None:
        value = table.get(_squash(key))
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        return None if value is None else str(value)

    return lookup
