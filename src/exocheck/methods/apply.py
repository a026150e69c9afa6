"""Analyses under a method: the settings, instrument and calibration an analysis uses, checked
(:func:`prepare`), the samples of a batch (:func:`for_samples`), and instrument exports entered as
made under a method (:func:`declare`).

A value given with an analysis (a flag, a manifest cell, a form field) that contradicts the
method is refused unless an override reason is given; the record's stamp then keeps the reason
and the differences (:mod:`exocheck.methods.stamps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from exocheck.errors import ParameterError
from exocheck.methods.calibrations import as_calibration, calibration_row, newest_calibration
from exocheck.methods.document import MethodDocument
from exocheck.methods.instruments import as_utc, check_current, instrument_row, match_instrument
from exocheck.methods.methods import document_of, method_row
from exocheck.methods.stamps import method_of
from exocheck.methods.units import check_values
from exocheck.nta.checks import check_override
from exocheck.optics import OPTICS_TOLERANCE
from exocheck.records import Measurement
from exocheck.store import models as m

#: the acquisition settings a value given with the analysis may contradict: (flag, unit, tolerance)
ACQUISITION: dict[str, tuple[str, str, float]] = {
    "fps": ("--fps", "fps", OPTICS_TOLERANCE["fps"]),
    "pixel_size_um": ("--pixel-size-um", "µm", OPTICS_TOLERANCE["pixel_size_um"]),
    "exposure_ms": ("--exposure-ms", "ms", OPTICS_TOLERANCE["exposure_ms"]),
    "temperature_c": ("--temperature-c", "°C", 0.0),
    "camera_gain": ("--camera-gain", "", OPTICS_TOLERANCE["camera_gain"]),
    "wavelength_nm": ("--wavelength-nm", "nm", OPTICS_TOLERANCE["wavelength_nm"]),
    "viscosity_mpa_s": ("--viscosity-mpa-s", "mPa·s", 0.01),
}
#: absolute agreement of a given temperature with the method's, °C
TEMPERATURE_TOLERANCE_C = 0.5


@dataclass(frozen=True)
class Applied:
    """What an analysis under a method uses: its conditions, settings and calibration, and the
    stamp its record carries (:func:`exocheck.methods.stamps.stamp`)."""

    conditions: Any  # exocheck.nta.analyze.Conditions
    settings: Any  # exocheck.nta.analyze.AnalysisSettings
    calibration: Any  # exocheck.nta.concentration.Calibration or None
    stamp: dict[str, Any]
    warnings: tuple[str, ...] = ()
    document: MethodDocument | None = None


def _differs(name: str, given: float, stated: float) -> bool:
    if name == "temperature_c":
        return abs(given - stated) > TEMPERATURE_TOLERANCE_C
    tolerance = ACQUISITION[name][2]
    return abs(given - stated) > tolerance * abs(stated)


def contradictions(
    doc: MethodDocument, given: dict[str, Any], detection: dict[str, Any] | None = None
) -> list[str]:
    """The values given with an analysis that contradict the method, in words.

    ``given`` maps acquisition settings (``fps``, ``pixel_size_um``, ``temperature_c``...) to
    what was given (None: not given); ``detection`` maps ``threshold_sigma``, ``invert``,
    ``bootstrap`` and ``mode`` likewise.
    """
    out = []
    for name, (flag, unit, _) in ACQUISITION.items():
        value, stated = given.get(name), getattr(doc.acquisition, name)
        if value is None or stated is None:
            continue
        if _differs(name, float(value), float(stated)):
            out.append(
                f"{flag} {value:g} contradicts method {doc.label} ({stated:g} {unit})".rstrip()
            )
    wanted = {
        "threshold_sigma": ("--threshold-sigma", doc.detection.threshold_sigma),
        "invert": ("--invert", doc.detection.invert),
        "bootstrap": ("--bootstrap", doc.sizing.bootstrap),
        "mode": ("--mode", doc.detection.mode),
    }
    for name, value in (detection or {}).items():
        if value is None or name not in wanted:
            continue
        flag, stated = wanted[name]
        if value != stated:
            out.append(f"{flag} {value} contradicts method {doc.label} ({stated})")
    return out


def resolve_settings(
    doc: MethodDocument,
    given: dict[str, Any] | None,
    detection: dict[str, Any] | None = None,
    override: str | None = None,
) -> tuple[Any, Any, list[str]]:
    """The conditions and analysis settings of ``doc``, with the values given that contradict it
    (refused unless ``override`` gives the reason, then used and returned in words).

    Returns
    -------
    (Conditions, AnalysisSettings, list of str)
    """
    from exocheck.nta.analyze import AnalysisSettings, Conditions
    from exocheck.nta.locate import LocateSettings
    from exocheck.nta.sizing import SizingSettings

    given = {k: v for k, v in (given or {}).items() if v is not None}
    detection = {k: v for k, v in (detection or {}).items() if v is not None}
    check_values(given)
    differences = check_override(contradictions(doc, given, detection), override)
    acquisition = {
        name: getattr(doc.acquisition, name)
        for name in ACQUISITION
        if getattr(doc.acquisition, name) is not None
    }
    index = given.pop("refractive_index", doc.product_refractive_index)
    conditions = Conditions(**(acquisition | given), refractive_index=index)
    settings = AnalysisSettings(
        locate=LocateSettings(
            threshold_sigma=detection.get("threshold_sigma", doc.detection.threshold_sigma),
            invert=detection.get("invert", doc.detection.invert),
        ),
        sizing=SizingSettings(n_bootstrap=detection.get("bootstrap", doc.sizing.bootstrap)),
        min_track_frames=doc.detection.min_track_frames,
        mode=detection.get("mode", doc.detection.mode),
    )
    return conditions, settings, differences


def prepare(
    store: Any,
    ref: str,
    *,
    instrument: str | None,
    given: dict[str, Any] | None = None,
    detection: dict[str, Any] | None = None,
    calibration: Any = None,
    override: str | None = None,
    at: datetime | None = None,
) -> Applied:
    """Everything an analysis under the approved method ``ref`` uses, checked.

    Parameters
    ----------
    store : Store
        Where the method, the instrument and the calibrations are.
    ref : str
        ``NAME`` (newest approved version) or ``NAME@VERSION``; a draft is refused.
    instrument : str
        The serial of the instrument of the register the videos were recorded on: of the
        method's instrument model, in qualification and calibration.
    given : dict, optional
        Acquisition values given with the analysis (None: not given); one that contradicts the
        method is refused unless ``override`` gives the reason.
    detection : dict, optional
        ``threshold_sigma``, ``invert``, ``bootstrap``, ``mode`` given (None: not given).
    calibration : Calibration, int or str, optional
        A calibration (a file's), or the id of a stored one; default the instrument's newest
        stored calibration. A method that requires one refuses to run without.
    override : str, optional
        The reason to use given values that contradict the method (recorded).

    Raises
    ------
    NotAllowed
        A draft method.
    ParameterError
        No instrument, another instrument model, an instrument past its due dates, a value
        given against the method without a reason, a required calibration missing.
    StoreError
        An unknown method, instrument or calibration.
    """
    if not (instrument or "").strip():
        raise ParameterError(
            f"an analysis under method {ref} names its instrument: give --instrument SERIAL "
            "(from the register, 'exocheck instrument list')"
        )
    with store.read() as session:
        row = method_row(session, ref, approved=True)
        doc = document_of(row)
        device = instrument_row(session, instrument)
        if " ".join(device.model.lower().split()) != " ".join(doc.instrument_model.lower().split()):
            raise ParameterError(
                f"instrument {device.serial} is a {device.model}; method {doc.label} is for a "
                f"{doc.instrument_model}"
            )
        check_current(device, at)
        conditions, settings, differences = resolve_settings(doc, given, detection, override)
        cal, calibration_id = _calibration_for(session, doc, device, calibration)
    warnings = []
    if cal is not None and cal.valid_until:
        until = as_utc(cal.valid_until, "valid until")
        if until is not None and until < (at or datetime.now(UTC)):
            warnings.append(
                f"the calibration expired on {until:%Y-%m-%d}: its concentration is not used "
                "for release"
            )
    stamped = {
        "name": doc.name,
        "version": doc.version,
        "sha256": row.sha256,
        "instrument_serial": device.serial,
        "instrument_model": device.model,
        "calibration_id": calibration_id,
        "reportable_range_nm": list(doc.reportable_range_nm),
        "camera": dict(doc.acquisition.camera),
        "override": (
            {"reason": override.strip(), "differences": differences} if differences else None
        ),
    }
    return Applied(conditions, settings, cal, stamped, tuple(warnings), doc)


def _calibration_for(
    session: Session, doc: MethodDocument, device: m.Instrument, calibration: Any
) -> tuple[Any, int | None]:
    """The calibration of an analysis under ``doc`` on ``device``, with its stored id; its
    ``valid_until`` no later than the method's interval allows."""
    from exocheck.nta.concentration import Calibration

    if isinstance(calibration, Calibration):
        cal, calibration_id = calibration, calibration.calibration_id
    elif calibration is not None:
        stored = calibration_row(session, calibration)
        if stored.instrument_id not in (None, device.id):
            raise ParameterError(
                f"calibration {stored.id} was made on another instrument, not {device.serial}"
            )
        cal, calibration_id = as_calibration(stored), stored.id
    else:
        stored = newest_calibration(session, device)
        cal = as_calibration(stored) if stored is not None else None
        calibration_id = stored.id if stored is not None else None
    if cal is None:
        if doc.calibration.required:
            raise ParameterError(
                f"method {doc.label} requires a bead calibration of instrument {device.serial}: "
                f"run 'exocheck calibrate --instrument {device.serial} --method {doc.label} ...' "
                "first"
            )
        return None, None
    interval = doc.calibration.interval_days
    made = as_utc(cal.made_at, "made at") if cal.made_at else None
    if interval is not None and made is not None:
        limit = made + timedelta(days=interval)
        own = as_utc(cal.valid_until, "valid until") if cal.valid_until else None
        until = min(own, limit) if own else limit
        cal = replace(cal, valid_until=until.isoformat())
    elif interval is not None and doc.calibration.required:
        raise ParameterError(
            f"method {doc.label} requires a calibration made within {interval} days; this one "
            "does not say when it was made: calibrate again"
        )
    return cal, calibration_id


def declare(store: Any, record: Measurement, ref: str) -> Measurement:
    """An instrument export entered as measured under the approved method ``ref``.

    Instrument software applied the settings, so they are not exocheck's to apply: the record
    is stamped as declared (``"declared": true``), with the instrument the export's serial
    matches in the register (of the method's instrument model). An engine record already
    carries its method and must name the same one; an engine record made without a method is
    refused (analyse it again under the method).
    """
    current = method_of(record)
    with store.read() as session:
        row = method_row(session, ref, approved=True)
        label = f"{row.name}@{row.version}"
        if current is not None:
            if (current.get("name"), current.get("version")) != (row.name, row.version):
                raise ParameterError(
                    f"the record was made under method {current.get('name')}@"
                    f"{current.get('version')}, not {label}"
                )
            return record
        if record.source.instrument == "exocheck":
            raise ParameterError(
                f"the record was analysed without a method: analyse the videos again with "
                f"--method {label}"
            )
        doc = document_of(row)
        device = match_instrument(session, record)
        if device is not None and (
            " ".join(device.model.lower().split()) != " ".join(doc.instrument_model.lower().split())
        ):
            raise ParameterError(
                f"the export's instrument {device.serial} is a {device.model}; method {label} is "
                f"for a {doc.instrument_model}"
            )
        record.settings = {
            **record.settings,
            "method": {
                "name": row.name,
                "version": row.version,
                "sha256": row.sha256,
                "instrument_serial": device.serial if device is not None else None,
                "instrument_model": device.model if device is not None else None,
                "calibration_id": None,
                "reportable_range_nm": list(doc.reportable_range_nm),
                "declared": True,
                "override": None,
            },
        }
    return record


def for_samples(applied: Applied, samples: Sequence[Any], override: str | None) -> list[Any]:
    """The samples of a batch (:class:`exocheck.batch.manifest.SampleSpec`) analysed under the
    method of ``applied``: its settings, calibration and stamp on each.

    The samples' conditions should start from ``applied.conditions`` (the manifest's cells then
    override them); a cell that contradicts the method is refused unless ``override`` gives the
    reason, and the sample's stamp then lists it. A calibration named per sample is refused: the
    method's is the instrument's (or the one given to :func:`prepare`).
    """
    if applied.document is None:
        raise ParameterError("the method's document is needed to check the samples")
    out = []
    for spec in samples:
        if spec.calibration is not None:
            raise ParameterError(
                f"sample {spec.sample}: under a method the calibration is the instrument's "
                "stored one (or --calibration), not one named per sample"
            )
        given = {
            name: getattr(spec.conditions, name)
            for name in ACQUISITION
            if getattr(spec.conditions, name) != getattr(applied.conditions, name)
        }
        differences = check_override(
            [f"sample {spec.sample}: {d}" for d in contradictions(applied.document, given)],
            override,
        )
        stamped = applied.stamp
        if differences:
            before = (stamped.get("override") or {}).get("differences", [])
            stamped = stamped | {
                "override": {
                    "reason": (override or "").strip(),
                    "differences": before + differences,
                }
            }
        out.append(
            replace(
                spec,
                settings=applied.settings,
                stamp=stamped,
                notes=applied.warnings,
                stored_calibration=applied.calibration,
                override=override,
            )
        )
    return out
