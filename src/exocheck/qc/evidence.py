"""What the evidence behind a lot's numbers says about itself: warnings that undermine a number.

A measurement record can carry the means of its own doubt: videos that failed and were averaged
in as zeros, the vendor's own "Unreliable" flags, a dilution that was never recorded, several
samples in one export, a concentration without a bead calibration (or calibrated on other
optics, or from a calibration past its validity), capture settings other than the specification
states, a measurement not made under the analytical method the specification names. Each such warning is a
:class:`Caveat` with a stable ``code`` and the quantities it undermines (``concentration``,
``size``). A criterion computed from an undermined quantity cannot pass or fail on it: the
release evaluation (:func:`exocheck.qc.release.evaluate`) makes it *inconclusive* and names the
caveat, unless a reviewer has accepted that caveat as a deviation with an electronic signature
(``LotData.accepted_deviations``), in which case the criterion is judged and the certificate
lists the accepted deviation.

Everything here is a pure function of the lot's records and the specification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from exocheck.methods.stamps import lacks_method, method_label, method_of
from exocheck.optics import optics_differences
from exocheck.qc.lotdata import LotData
from exocheck.records import Measurement

Quantity = Literal["concentration", "size"]

#: Every caveat code, with what it means in a line (shown in refusals and on the certificate).
CODES: dict[str, str] = {
    "failed-videos": "videos that failed (concentration 0) are averaged in",
    "unsized-videos": "videos without sized particles are averaged in",
    "vendor-unreliable": "the instrument flags videos as unreliable",
    "dilution-not-recorded": "the dilution was not recorded",
    "mixed-samples": "the export holds more than one sample",
    "uncalibrated": "the concentration is not bead-calibrated",
    "calibration-other-optics": "the calibration was made on other optics",
    "capture-settings": "capture settings differ from the specification's",
    "calibration-expired": "the calibration had expired when the sample was measured",
    "method": "not measured under the specification's method",
}

#: the codes that say a concentration cannot bear a decision because of its calibration
CALIBRATION_CODES = ("uncalibrated", "calibration-other-optics", "calibration-expired")

#: Vendor flag values that say a video cannot be trusted (compared case-insensitively).
_UNRELIABLE = re.compile(r"\b(unreliable|invalid|failed|error|too (few|many))\b", re.IGNORECASE)
_MIXED = re.compile(r"\b(mixed samples|more than one sample|several samples)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Caveat:
    """A warning that undermines some of a lot's numbers."""

    code: str
    undermines: frozenset[str]
    detail: str

    @property
    def line(self) -> str:
        """``code: detail`` in one line."""
        return f"{self.code}: {self.detail}"


def _failed_videos(record: Measurement) -> list[str]:
    return [
        v.name
        for v in record.per_video
        if v.concentration_per_ml is not None and v.concentration_per_ml <= 0
    ]


def _unsized_videos(record: Measurement) -> list[str]:
    failed = set(_failed_videos(record))
    return [v.name for v in record.per_video if not v.valid and v.name not in failed]


def _names(names: list[str], total: int) -> str:
    shown = ", ".join(names[:5]) + (f", … ({len(names) - 5} more)" if len(names) > 5 else "")
    return f"{len(names)} of {total} videos ({shown})"


def _vendor_unreliable(record: Measurement) -> list[str]:
    """The vendor's own flags (NanoSight ``[Concentration Warnings]``/``[Information]``) whose
    value says a video cannot be trusted."""
    flags = record.instrument_summary.get("flags")
    found: list[str] = []
    if isinstance(flags, dict):
        for key, values in flags.items():
            values = values if isinstance(values, list) else [values]
            bad = [str(v) for v in values if _UNRELIABLE.search(str(v))]
            if bad:
                found.append(f"{key} = {bad[0]} ({len(bad)} of {len(values)} videos)")
    for text in record.warnings:
        if "unreliable" in text.lower() and not any(
            text.startswith(f.split(" = ")[0]) for f in found
        ):
            found.append(text)
    return found


def _dilution_not_recorded(record: Measurement) -> bool:
    if any(w.lower().startswith("dilution not recorded") for w in record.warnings):
        return True
    return False


def record_caveats(record: Measurement) -> list[Caveat]:
    """The caveats a particle-measurement record carries about itself."""
    out: list[Caveat] = []
    total = len(record.per_video)
    failed = _failed_videos(record)
    if failed:
        out.append(
            Caveat(
                "failed-videos",
                frozenset({"concentration"}),
                f"{_names(failed, total)} failed (concentration 0) and are averaged in",
            )
        )
    unsized = _unsized_videos(record)
    if unsized:
        out.append(
            Caveat(
                "unsized-videos",
                frozenset({"size"}),
                f"{_names(unsized, total)} have no valid tracks",
            )
        )
    unreliable = _vendor_unreliable(record)
    if unreliable:
        # a flag on the concentration measurement (NanoSight's "Validity of concentration
        # measurement") says nothing against the sizes; any other flag undermines both
        only_concentration = all("concentration" in u.lower() for u in unreliable)
        out.append(
            Caveat(
                "vendor-unreliable",
                frozenset({"concentration"} if only_concentration else {"concentration", "size"}),
                "the instrument flags " + "; ".join(unreliable[:3]),
            )
        )
    if _dilution_not_recorded(record):
        out.append(
            Caveat(
                "dilution-not-recorded",
                frozenset({"concentration"}),
                "the dilution was not recorded: the concentration may be that of the cell, "
                "not of the sample",
            )
        )
    mixed = [w for w in record.warnings if _MIXED.search(w)]
    if mixed:
        out.append(Caveat("mixed-samples", frozenset({"concentration", "size"}), mixed[0]))
    calibration = _calibration_caveat(record)
    if calibration is not None:
        out.append(calibration)
    return out


def _calibration_caveat(record: Measurement) -> Caveat | None:
    """An uncalibrated concentration, or one calibrated on other optics.

    The engine's nominal detection volume (no bead calibration) is an estimate, not a
    measurement; a calibration holds only for the optics it was made on (pixel size, frame rate,
    exposure, gain, wavelength). Instrument imports (``calibrated`` unknown) carry the vendor's
    calibration and are taken as they are.
    """
    conc = record.concentration
    if conc.particles_per_ml is None:
        return None
    concentration = frozenset({"concentration"})
    if conc.calibrated is False:
        return Caveat(
            "uncalibrated",
            concentration,
            "the concentration is not bead-calibrated (nominal detection volume)",
        )
    if conc.calibration_mismatch:
        return Caveat(
            "calibration-other-optics",
            concentration,
            f"the calibration was made on other optics ({conc.calibration_mismatch})",
        )
    calibration = (record.settings or {}).get("calibration")
    expired = _calibration_expired(record)
    if expired is not None:
        return Caveat("calibration-expired", concentration, expired)
    if isinstance(calibration, dict):
        for video in (record.settings or {}).get("per_video") or []:
            if not isinstance(video, dict):
                continue
            if video.get("exposure_assumed"):  # not a setting of the video: not compared
                video = {k: v for k, v in video.items() if k != "exposure_ms"}
            differences = optics_differences(calibration, video)
            if differences:
                return Caveat(
                    "calibration-other-optics",
                    concentration,
                    f"the calibration was made on other optics ({'; '.join(differences)})",
                )
    return None


def _as_utc(text: object) -> datetime | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _calibration_expired(record: Measurement) -> str | None:
    """Why the record's calibration had expired when it was measured (None: it had not, or it
    states no validity). The measurement's time is the record's ``date``, else when the record
    was made (``provenance.created``)."""
    calibration = (record.settings or {}).get("calibration")
    if not isinstance(calibration, dict):
        return None
    until = _as_utc(calibration.get("valid_until"))
    if until is None:
        return None
    measured = record.date or record.provenance.created
    measured = measured.replace(tzinfo=UTC) if measured.tzinfo is None else measured
    if measured <= until:
        return None
    number = calibration.get("calibration_id")
    which = f"calibration {number}" if number is not None else "the calibration"
    return (
        f"{which} was valid until {until:%Y-%m-%d}; the sample was measured on "
        f"{measured.astimezone(UTC):%Y-%m-%d}"
    )


def method_caveat(record: Measurement, method: str) -> Caveat | None:
    """The record was not made under ``method`` (``NAME``: any version, or ``NAME@VERSION``),
    as the specification requires: made without a method, or under another."""
    name, _, version = method.partition("@")
    version = version.lstrip("v")
    if lacks_method(record):
        detail = f"made without a method; the specification requires method {method}"
        return Caveat("method", frozenset({"concentration", "size"}), detail)
    stamp = method_of(record) or {}
    used = method_label(record)
    if stamp.get("name") != name or (version and str(stamp.get("version")) != version):
        detail = f"made under method {used}; the specification requires method {method}"
        return Caveat("method", frozenset({"concentration", "size"}), detail)
    return None


def _setting(record: Measurement, name: str) -> float | str | None:
    """A capture setting of ``record`` by its exocheck name (the record's own field, its
    settings, or the settings of its channel)."""
    if name == "temperature_c":
        return record.temperature_c
    for source in (record.settings or {}, (record.channel.settings if record.channel else {})):
        value = source.get(name)
        if value is not None and not isinstance(value, dict | list):
            return value
    return None


def capture_caveat(record: Measurement, capture: dict[str, object]) -> Caveat | None:
    """Capture settings of ``record`` that differ from what the specification states.

    ``capture`` maps a setting name to an exact value or a ``[min, max]`` range. A setting the
    record does not state is a difference too: the evidence cannot show it was met.
    """
    differences = []
    for name, wanted in capture.items():
        value = _setting(record, name)
        if isinstance(wanted, list | tuple) and len(wanted) == 2:
            low, high = wanted
            ok = isinstance(value, int | float) and low <= value <= high
            text = f"{low:g}–{high:g}"
        elif isinstance(wanted, int | float) and not isinstance(wanted, bool):
            ok = isinstance(value, int | float) and abs(value - wanted) <= 1e-6 * max(
                1.0, abs(wanted)
            )
            text = f"{wanted:g}"
        else:
            ok = value is not None and str(value).strip().lower() == str(wanted).strip().lower()
            text = str(wanted)
        if not ok:
            shown = (
                "not stated"
                if value is None
                else f"{value:g}"
                if isinstance(value, int | float)
                else str(value)
            )
            differences.append(f"{name} {shown} (specified {text})")
    if not differences:
        return None
    return Caveat("capture-settings", frozenset({"concentration", "size"}), "; ".join(differences))


def lot_caveats(
    data: LotData, capture: dict[str, object] | None = None, method: str | None = None
) -> list[Caveat]:
    """Every caveat of the lot's particle measurement (none without one): its own, and against
    the specification's ``capture`` settings and ``method``."""
    if data.nta is None:
        return []
    out = record_caveats(data.nta)
    if capture:
        caveat = capture_caveat(data.nta, capture)
        if caveat is not None:
            out.append(caveat)
    if method:
        caveat = method_caveat(data.nta, method)
        if caveat is not None:
            out.append(caveat)
    return out
