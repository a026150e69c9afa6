"""Bead calibrations that are checked before they are used, stored, and expire.

A bead calibration measures the detection volume on a standard of certified diameter and
concentration (ISO 19430 practice). It is only as good as the standard and the video: a 100 nm
standard entered as 200 nm, or an EV sample taken for the beads, gives a calibration that
silently rescales every later concentration. :func:`check_standard` therefore accepts a
calibration only when

* the beads' size distribution is **one narrow peak**: span (D90 − D10)/D50 at most
  ``max_span`` (default :data:`DEFAULT_MAX_SPAN` = 0.45), and
* the measured D50 agrees with the **certified diameter** within ``tolerance_percent``
  (default :data:`DEFAULT_TOLERANCE_PERCENT` = 5 %).

Why these bounds. Certified polystyrene size standards of ~100 nm carry an expanded uncertainty
of 2–3 % of their diameter; exocheck's D50 of simulated 100 nm beads (CV 3 %) lies +0.2 to
+1.4 % from the truth on 640×480×450-frame captures (750–830 sized tracks, 4 seeds) and +2.3 to
+4.9 % on the tests' small 320×240×150-frame captures (80–100 tracks): ±5 % holds a sound
calibration of either length and refuses a wrong standard, wrong units or wrong settings (a
factor 2 is 100 %). The measured span of those bead captures is 0.14–0.19 (long) and 0.19–0.30
(short); lognormal EV samples of geometric SD 1.35 — the narrowest EV preparations — measure
0.57–0.88, and of 1.5, 0.72–1.02. 0.45 lies between the two with a margin on either side
(docs/method.md has the table).

A stored calibration names its standard (lot, expiry: an expired standard is refused), may belong
to an instrument of the register, and expires after the calibration interval of the method it
was made under (``valid_until``). A measurement made after that carries the calibration's
``valid_until`` in its record, and its concentration is inconclusive at release (the
``calibration-expired`` caveat of :mod:`exocheck.qc.evidence`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exocheck.errors import ParameterError
from exocheck.methods.instruments import UnknownRecord, as_utc, check_current, instrument_row
from exocheck.methods.units import check_value
from exocheck.nta.concentration import Calibration
from exocheck.records import Measurement
from exocheck.store import models as m
from exocheck.store.base import aware, check_actor

DEFAULT_TOLERANCE_PERCENT = 5.0
"""Largest accepted deviation of the measured D50 from the certified diameter, %."""

DEFAULT_MAX_SPAN = 0.45
"""Largest accepted span (D90 − D10)/D50 of a bead standard's measured size distribution."""


class CalibrationRefused(ParameterError):
    """The video or the standard cannot calibrate: one line saying why."""


@dataclass(frozen=True)
class BeadStandard:
    """The bead standard of a calibration, as its certificate states it.

    Attributes
    ----------
    certified_concentration_per_ml : float
        Concentration of the standard as measured (after any dilution), per mL.
    certified_diameter_nm : float or None
        Certified diameter, nm; None skips the size check (a file calibration of old).
    lot, name : str or None
        The standard's lot and product name.
    expiry : date, datetime, str or None
        The standard's expiry date (ISO text accepted).
    """

    certified_concentration_per_ml: float
    certified_diameter_nm: float | None = None
    lot: str | None = None
    expiry: date | datetime | str | None = None
    name: str | None = None


def span_of(calibration: Calibration) -> float | None:
    """Span (D90 − D10)/D50 of the beads' measured size distribution (None: not measured)."""
    d10, d50, d90 = (
        calibration.measured_d10_nm,
        calibration.measured_d50_nm,
        calibration.measured_d90_nm,
    )
    if d10 is None or d50 is None or d90 is None or not d50 > 0:
        return None
    return (d90 - d10) / d50


def check_standard(
    calibration: Calibration,
    *,
    tolerance_percent: float = DEFAULT_TOLERANCE_PERCENT,
    max_span: float = DEFAULT_MAX_SPAN,
    where: str = "",
) -> dict[str, float | None]:
    """Accept a bead calibration only on one narrow peak of the certified size.

    Parameters
    ----------
    calibration : Calibration
        As :func:`exocheck.nta.analyze.calibrate` measured it (``measured_d*_nm`` set);
        ``bead_diameter_nm`` is the certified diameter (None: the size is not checked).
    tolerance_percent : float
        Largest deviation of the measured D50 from the certified diameter, %.
    max_span : float
        Largest span (D90 − D10)/D50.
    where : str
        What the message names first (the video).

    Returns
    -------
    dict
        ``{"d50_nm", "span", "deviation_percent"}`` of the accepted calibration.

    Raises
    ------
    CalibrationRefused
        Not one narrow peak, or not the certified size; one line with the numbers.
    """
    if not (math.isfinite(tolerance_percent) and 0 < tolerance_percent <= 50):
        raise ParameterError(f"tolerance must be between 0 and 50 %, got {tolerance_percent:g}")
    if not (math.isfinite(max_span) and 0 < max_span <= 5):
        raise ParameterError(f"the largest span must be between 0 and 5, got {max_span:g}")
    prefix = f"{where}: " if where else ""
    span = span_of(calibration)
    d50 = calibration.measured_d50_nm
    if span is None or d50 is None:
        raise CalibrationRefused(f"{prefix}the beads' size distribution could not be measured")
    if span > max_span:
        raise CalibrationRefused(
            f"{prefix}not one narrow peak: span (D90−D10)/D50 {span:.2f} "
            f"(D10 {calibration.measured_d10_nm:.0f}, D50 {d50:.0f}, "
            f"D90 {calibration.measured_d90_nm:.0f} nm) is above {max_span:g} for a bead "
            "standard: an EV sample, aggregated or mixed beads?"
        )
    deviation = None
    certified = calibration.bead_diameter_nm
    if certified is not None:
        deviation = 100.0 * (d50 - certified) / certified
        if abs(deviation) > tolerance_percent:
            raise CalibrationRefused(
                f"{prefix}the beads measure about {d50:.0f} nm (D50), not the certified "
                f"{certified:g} nm ({deviation:+.0f} %, ±{tolerance_percent:g} % allowed): "
                "wrong standard, settings or units?"
            )
    return {"d50_nm": d50, "span": span, "deviation_percent": deviation}


def check_expiry(standard: BeadStandard, at: datetime | None = None) -> datetime | None:
    """The standard's expiry as UTC; :class:`CalibrationRefused` when it is past at ``at``."""
    expiry = as_utc(standard.expiry, "standard expiry")
    at = at or datetime.now(UTC)
    if expiry is not None and expiry + timedelta(days=1) <= at:  # usable on its expiry day
        lot = f" (lot {standard.lot})" if standard.lot else ""
        raise CalibrationRefused(
            f"the bead standard{lot} expired on {expiry:%Y-%m-%d}: use a standard within its expiry"
        )
    return expiry


def calibrate_standard(
    video: str | Path,
    standard: BeadStandard,
    conditions: Any,
    settings: Any = None,
    *,
    tolerance_percent: float = DEFAULT_TOLERANCE_PERCENT,
    max_span: float = DEFAULT_MAX_SPAN,
    valid_days: float | None = None,
    instrument_serial: str | None = None,
    override: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Calibration:
    """Calibrate on a bead standard and accept the result only when :func:`check_standard` does.

    The standard's expiry is checked before any frame is read; the bead diameter for unit sense
    (:func:`exocheck.methods.units.check_value`). The calibration returned records the standard,
    when it was made and, with ``valid_days``, until when it may be used.

    Raises
    ------
    CalibrationRefused
        An expired standard, or a video that is not one narrow peak of the certified size.
    """
    from exocheck.nta.analyze import calibrate

    check_value("bead_diameter_nm", standard.certified_diameter_nm)
    expiry = check_expiry(standard)
    if valid_days is not None and not (math.isfinite(valid_days) and valid_days > 0):
        raise ParameterError(f"the validity must be a number of days > 0, got {valid_days:g}")
    cal = calibrate(
        video,
        standard.certified_concentration_per_ml,
        conditions,
        standard.certified_diameter_nm,
        settings,
        progress,
        override=override,
    )
    check_standard(
        cal, tolerance_percent=tolerance_percent, max_span=max_span, where=Path(video).name
    )
    made = datetime.now(UTC).replace(microsecond=0)
    return replace(
        cal,
        standard_lot=(standard.lot or "").strip() or None,
        standard_expiry=expiry.date().isoformat() if expiry else None,
        made_at=made.isoformat(),
        valid_until=(made + timedelta(days=valid_days)).isoformat() if valid_days else None,
        instrument_serial=instrument_serial,
    )


def calibration_dict(row: m.BeadCalibration) -> dict[str, Any]:
    """A stored calibration as the shells show it."""
    return {
        "id": row.id,
        "instrument": row.data.get("instrument_serial"),
        "method": row.data.get("method"),
        "standard_name": row.standard_name,
        "standard_lot": row.standard_lot,
        "standard_expiry": aware(row.standard_expiry).date().isoformat(),
        "certified_diameter_nm": row.certified_diameter_nm,
        "certified_concentration_per_ml": row.certified_concentration_per_ml,
        "measured_d50_nm": row.measured_d50_nm,
        "span": row.span,
        "tolerance_percent": row.tolerance_percent,
        "max_span": row.max_span,
        "depth_um": row.data.get("depth_um"),
        "made_at": aware(row.created_at).isoformat(),
        "valid_until": aware(row.valid_until).isoformat() if row.valid_until else None,
        "source_sha256": row.source_sha256,
        "created_by": row.created_by,
    }


def store_calibration(
    store: Any,
    calibration: Calibration,
    *,
    by: str,
    instrument: str | None = None,
    method: str | None = None,
    standard_name: str | None = None,
    tolerance_percent: float = DEFAULT_TOLERANCE_PERCENT,
    max_span: float = DEFAULT_MAX_SPAN,
) -> dict[str, Any]:
    """Store an accepted calibration (one transaction, audited); returns it with its ``id``.

    A stored calibration states its standard in full (certified diameter, lot, expiry). It may
    belong to an ``instrument`` of the register (which must be in qualification and calibration)
    and be made under an approved ``method`` (``NAME[@VERSION]``), whose calibration interval
    then sets ``valid_until`` and whose instrument model the instrument must be.

    Raises
    ------
    ParameterError
        The standard is not stated in full, or was not checked (no measured size).
    StoreError
        An unknown instrument or method.
    """
    from exocheck.methods.methods import document_of, method_row

    by = check_actor(by)
    missing = [
        what
        for what, value in (
            ("--bead-diameter-nm (the certified diameter)", calibration.bead_diameter_nm),
            ("--standard-lot", calibration.standard_lot),
            ("--standard-expiry", calibration.standard_expiry),
        )
        if not value
    ]
    if missing:
        raise ParameterError(f"a stored calibration states its standard: give {', '.join(missing)}")
    accepted = check_standard(calibration, tolerance_percent=tolerance_percent, max_span=max_span)
    with store.transaction() as session:
        instrument_id = method_id = None
        valid_until = as_utc(calibration.valid_until, "valid until")
        data = asdict(calibration)
        if instrument is not None:
            row = instrument_row(session, instrument)
            check_current(row)
            instrument_id = row.id
            data["instrument_serial"] = row.serial
        if method is not None:
            mrow = method_row(session, method, approved=True)
            doc = document_of(mrow)
            if instrument is not None and not _same_model(row.model, doc.instrument_model):
                raise ParameterError(
                    f"instrument {row.serial} is a {row.model}; method {mrow.name}@{mrow.version} "
                    f"is for a {doc.instrument_model}"
                )
            method_id = mrow.id
            data["method"] = f"{mrow.name}@{mrow.version}"
            interval = doc.calibration.interval_days
            made = as_utc(calibration.made_at, "made at") or datetime.now(UTC)
            if interval is not None:
                limit = made + timedelta(days=interval)
                valid_until = min(valid_until, limit) if valid_until else limit
        data["valid_until"] = valid_until.isoformat() if valid_until else None
        data.pop("calibration_id", None)
        stored = m.BeadCalibration(
            instrument_id=instrument_id,
            method_id=method_id,
            standard_name=(standard_name or "").strip()[:200] or None,
            standard_lot=calibration.standard_lot,
            standard_expiry=as_utc(calibration.standard_expiry, "standard expiry"),
            certified_diameter_nm=calibration.bead_diameter_nm,
            certified_concentration_per_ml=calibration.known_concentration_per_ml,
            measured_d50_nm=accepted["d50_nm"],
            span=accepted["span"],
            tolerance_percent=tolerance_percent,
            max_span=max_span,
            valid_until=valid_until,
            source_sha256=calibration.source_sha256,
            data=data,
            created_by=by,
        )
        session.add(stored)
        session.flush()
        after = calibration_dict(stored)
        store.audit(session, by, "calibration.add", "calibration", str(stored.id), after=after)
    return after


def _same_model(a: str | None, b: str | None) -> bool:
    return " ".join((a or "").lower().split()) == " ".join((b or "").lower().split())


def calibration_row(session: Session, calibration_id: int | str) -> m.BeadCalibration:
    """The stored calibration ``calibration_id`` (:class:`StoreError` when there is none)."""
    text = str(calibration_id).strip().lstrip("#")
    row = session.get(m.BeadCalibration, int(text)) if text.isdigit() else None
    if row is None:
        raise UnknownRecord(
            f"no stored calibration {calibration_id!r} ('exocheck calibration list')"
        )
    return row


def as_calibration(row: m.BeadCalibration) -> Calibration:
    """The calibration a stored row holds, with its id, ready for an analysis."""
    data = dict(row.data)
    data.pop("method", None)
    return Calibration(**data, calibration_id=row.id)


def load_calibration(store: Any, calibration_id: int | str) -> Calibration:
    """A stored calibration, ready for an analysis."""
    with store.read() as session:
        return as_calibration(calibration_row(session, calibration_id))


def newest_calibration(session: Session, instrument: m.Instrument) -> m.BeadCalibration | None:
    """The newest stored calibration of an instrument (None: it has none)."""
    return session.scalar(
        select(m.BeadCalibration)
        .where(m.BeadCalibration.instrument_id == instrument.id)
        .order_by(m.BeadCalibration.id.desc())
        .limit(1)
    )


def list_calibrations(store: Any, instrument: str | None = None) -> list[dict[str, Any]]:
    """Stored calibrations, newest first (of one instrument when ``instrument`` is given)."""
    with store.read() as session:
        query = select(m.BeadCalibration).order_by(m.BeadCalibration.id.desc())
        if instrument is not None:
            query = query.where(
                m.BeadCalibration.instrument_id == instrument_row(session, instrument).id
            )
        return [calibration_dict(r) for r in session.scalars(query)]


def get_calibration(store: Any, calibration_id: int | str) -> dict[str, Any]:
    """One stored calibration, with the whole calibration it holds (``calibration``)."""
    with store.read() as session:
        row = calibration_row(session, calibration_id)
        return calibration_dict(row) | {"calibration": dict(row.data)}


def calibration_of(record: Measurement) -> dict[str, Any] | None:
    """The calibration a record's concentration rests on, as the record keeps it (id, standard,
    ``valid_until``...); None for an uncalibrated record or an instrument import."""
    value = (record.settings or {}).get("calibration")
    return dict(value) if isinstance(value, dict) else None


def detection_limit_nm(
    calibration: Calibration, refractive_index: float, *, wavelength_nm: float | None = None
) -> float | None:
    """Smallest diameter of particles of ``refractive_index`` the calibrated optics detect.

    The beads' in-focus peak over the detection threshold (``bead_brightness_ratio``) at their
    certified diameter sets the brightness per nm² of Mie scattering cross-section; the limit is
    where a particle of the product's index reaches the threshold (ratio 1). None without a
    certified bead diameter.
    """
    import numpy as np

    from exocheck.physics import scattering_cross_section_nm2, scattering_cross_sections_nm2

    if calibration.bead_diameter_nm is None:
        return None
    if not (math.isfinite(refractive_index) and refractive_index > 1.0):
        raise ParameterError(f"refractive index must be > 1, got {refractive_index:g}")
    wavelength = wavelength_nm or calibration.wavelength_nm or 488.0
    c_bead = scattering_cross_section_nm2(
        calibration.bead_diameter_nm, calibration.bead_refractive_index, wavelength_nm=wavelength
    )
    grid = np.geomspace(5.0, 5000.0, 400)
    ratio = (
        calibration.bead_brightness_ratio
        * scattering_cross_sections_nm2(
            grid, refractive_index, wavelength_nm=wavelength, points_per_decade=60
        )
        / c_bead
    )
    index = int(np.argmax(ratio >= 1.0))
    return float(grid[index]) if ratio[index] >= 1.0 else None
