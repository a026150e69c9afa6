"""Analytical methods: versioned, QA-approved records of how a sample is measured.

A method is a small YAML document::

    schema: exocheck.method/1
    name: nta-ev-scatter
    version: 1
    title: EV particle size and concentration by scatter NTA
    instrument_model: NanoSight NS300
    acquisition: {fps: 30, exposure_ms: 15, pixel_size_um: 0.166, temperature_c: 25,
                  wavelength_nm: 488, camera: {camera_level: 14}}
    detection: {threshold_sigma: 5, min_track_frames: 10}
    sizing: {bootstrap: 40}
    calibration: {required: true, interval_days: 30, tolerance_percent: 5, max_span: 0.45}
    reportable_range_nm: [50, 1000]
    product_refractive_index: 1.39

It is stored once per name and version (:func:`add_method`) and used only after QA approves it
(:func:`approve_method`: the ``qa`` role, and never by its author: four eyes). An analysis under
a method (:func:`prepare`) takes its acquisition, detection and sizing settings from it; a value
given on the command line (or a form field) that contradicts the method, like one that
contradicts the video file, is refused unless an override reason is given. The record then
names the method, its version, the instrument's serial and the calibration it used
(:func:`stamp`; read back by :func:`method_of`). A record without one is "no method"
(:func:`method_label`), and a specification that names a method makes its criteria inconclusive
on such a record (:func:`exocheck.qc.evidence.method_caveat`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from exocheck.errors import NotAllowed, ParameterError, SpecificationError, StoreError
from exocheck.methods.calibrations import (
    as_calibration,
    calibration_row,
    detection_limit_nm,
    newest_calibration,
)
from exocheck.methods.instruments import (
    UnknownRecord,
    as_utc,
    check_current,
    instrument_row,
    match_instrument,
)
from exocheck.methods.stamps import method_label, method_of, stamp  # noqa: F401  (public here too)
from exocheck.methods.units import check_values
from exocheck.nta.checks import check_override
from exocheck.optics import OPTICS_TOLERANCE
from exocheck.records import Measurement
from exocheck.store import models as m
from exocheck.store.base import aware, check_actor

METHOD_SCHEMA = "exocheck.method/1"


class MethodError(SpecificationError):
    """A method document that does not read: one line with its source and key."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Acquisition(_Doc):
    """How the video is recorded. ``camera`` holds the instrument's own camera settings by the
    names it gives them (``camera_level``, ``shutter``, ``gain``...), recorded as they are."""

    fps: float | None = Field(default=None, gt=0)
    exposure_ms: float | None = Field(default=None, gt=0)
    pixel_size_um: float | None = Field(default=None, gt=0)
    temperature_c: float = Field(default=25.0, ge=-10, le=100)
    camera_gain: float | None = Field(default=None, gt=0)
    wavelength_nm: float | None = Field(default=None, gt=0)
    viscosity_mpa_s: float | None = Field(default=None, gt=0)
    camera: dict[str, float | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exposure(self) -> Acquisition:
        if self.fps and self.exposure_ms and self.exposure_ms > 1000.0 / self.fps:
            raise ValueError(
                f"exposure {self.exposure_ms:g} ms is longer than the frame interval "
                f"{1000 / self.fps:.4g} ms"
            )
        return self


class Detection(_Doc):
    mode: Literal["scatter", "fluorescence"] = "scatter"
    threshold_sigma: float = Field(default=5.0, gt=0)
    invert: bool = False
    min_track_frames: int = Field(default=10, ge=3)


class Sizing(_Doc):
    bootstrap: int = Field(default=40, ge=0, le=10000)


class CalibrationPolicy(_Doc):
    """Whether a bead calibration is required, how long one stays valid, and how it is
    accepted (:func:`exocheck.methods.calibrations.check_standard`)."""

    required: bool = True
    interval_days: int | None = Field(default=30, ge=1)
    tolerance_percent: float = Field(default=5.0, gt=0, le=50)
    max_span: float = Field(default=0.45, gt=0, le=5)


class MethodDocument(_Doc):
    """A method as its YAML document states it."""

    schema_: Literal["exocheck.method/1"] = Field(default=METHOD_SCHEMA, alias="schema")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: int = Field(ge=1)
    title: str | None = None
    reference: str | None = Field(default=None, description="the SOP or validation report")
    instrument_model: str = Field(min_length=1, max_length=200)
    acquisition: Acquisition
    detection: Detection = Field(default_factory=Detection)
    sizing: Sizing = Field(default_factory=Sizing)
    calibration: CalibrationPolicy = Field(default_factory=CalibrationPolicy)
    reportable_range_nm: tuple[float, float]
    product_refractive_index: float | None = Field(default=None, gt=1.0, lt=3.0)

    @model_validator(mode="after")
    def _range(self) -> MethodDocument:
        low, high = self.reportable_range_nm
        if not 0 < low < high:
            raise ValueError(
                f"reportable_range_nm must be [low, high] with 0 < low < high, got {low}, {high}"
            )
        return self

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def parse_method(text: str, source: str = "<method>") -> MethodDocument:
    """Validate a method document; :class:`MethodError` names the source and the key of the
    first problem, and a value outside physical sense for its unit the unit probably meant."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise MethodError(
            f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(data, dict):
        raise MethodError(f"{source}: a method must be a YAML mapping")
    if data.get("schema", METHOD_SCHEMA) != METHOD_SCHEMA:
        raise MethodError(f"{source}: schema must be '{METHOD_SCHEMA}'")
    acquisition = data.get("acquisition")
    if isinstance(acquisition, dict):
        try:
            check_values(acquisition, style="field")
        except ParameterError as exc:
            raise MethodError(f"{source} key 'acquisition': {exc}") from None
    try:
        return MethodDocument.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        message = message.removeprefix("Value error, ")
        raise MethodError(f"{source}{f' key {key!r}' if key else ''}: {message}") from None


def method_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_of(row: m.Method) -> MethodDocument:
    """The document a stored method holds."""
    return parse_method(row.yaml_text, f"{row.name}@{row.version}")


def method_dict(row: m.Method) -> dict[str, Any]:
    """A stored method as the shells list it."""
    doc = document_of(row)
    return {
        "method": f"{row.name}@{row.version}",
        "name": row.name,
        "version": row.version,
        "title": doc.title,
        "instrument_model": row.instrument_model,
        "status": "approved" if row.approved_by else "draft",
        "created_by": row.created_by,
        "created_at": aware(row.created_at).isoformat(),
        "approved_by": row.approved_by,
        "approved_at": aware(row.approved_at).isoformat() if row.approved_at else None,
        "sha256": row.sha256,
    }


# ---- the store --------------------------------------------------------------------------------
def add_method(
    store: Any, source: str | Path, *, by: str, text: str | None = None
) -> dict[str, Any]:
    """Store a method version as a draft (one transaction, audited).

    The same name and version again with the same text changes nothing; with other text it is
    refused (a method version never changes: give the new text a new version).
    """
    by = check_actor(by)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise MethodError(f"{source}: cannot read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise MethodError(f"{source}: not a UTF-8 text file") from None
    doc = parse_method(text, str(source))
    digest = method_sha256(text)
    with store.transaction() as session:
        existing = session.scalar(
            select(m.Method).where(m.Method.name == doc.name, m.Method.version == doc.version)
        )
        if existing is not None:
            if existing.sha256 == digest:
                return method_dict(existing) | {"changed": False}
            raise StoreError(
                f"method {doc.label} exists with other text; a method version never changes: "
                "give the new text a new version"
            )
        row = m.Method(
            name=doc.name,
            version=doc.version,
            instrument_model=doc.instrument_model,
            yaml_text=text,
            sha256=digest,
            created_by=by,
        )
        session.add(row)
        session.flush()
        after = method_dict(row)
        store.audit(session, by, "method.add", "method", doc.label, after=after)
    return after | {"changed": True}


def method_row(session: Session, ref: str, *, approved: bool = False) -> m.Method:
    """The method ``NAME`` (its newest version; with ``approved``, its newest approved one) or
    ``NAME@VERSION``; with ``approved`` a draft is refused (:class:`NotAllowed`)."""
    name, _, version = (ref or "").strip().partition("@")
    query = select(m.Method).where(m.Method.name == name)
    if version:
        try:
            number = int(version.lstrip("v"))
        except ValueError:
            raise ParameterError(
                f"bad method reference {ref!r} (use NAME or NAME@VERSION)"
            ) from None
        query = query.where(m.Method.version == number)
    elif approved:
        query = query.where(m.Method.approved_by.is_not(None))
    row = session.scalar(query.order_by(m.Method.version.desc()).limit(1))
    if row is None:
        known = session.scalar(select(m.Method.id).where(m.Method.name == name))
        if known is not None and approved and not version:
            raise NotAllowed(f"method {name} has no approved version yet (QA approves it)")
        raise UnknownRecord(f"unknown method {ref!r} (add it with 'exocheck method add')")
    if approved and row.approved_by is None:
        raise NotAllowed(
            f"method {row.name}@{row.version} is a draft: QA approves it before it is used"
        )
    return row


def approve_method(store: Any, ref: str, *, by: str) -> dict[str, Any]:
    """QA's approval of a method version (the role is checked by
    :func:`exocheck.auth.identity.identify` with ``method.approve``): never by its author."""
    by = check_actor(by)
    with store.transaction() as session:
        row = method_row(session, ref)
        if row.approved_by is not None:
            raise StoreError(
                f"method {row.name}@{row.version} was approved already by {row.approved_by}"
            )
        if row.created_by == by:
            raise NotAllowed(
                f"{by} wrote method {row.name}@{row.version}; another person approves it "
                "(four eyes)"
            )
        row.approved_by = by
        row.approved_at = datetime.now(UTC)
        session.flush()
        after = method_dict(row)
        store.audit(
            session, by, "method.approve", "method", f"{row.name}@{row.version}", after=after
        )
    return after


def list_methods(store: Any) -> list[dict[str, Any]]:
    """Every method version, drafts included, by name and version."""
    with store.read() as session:
        rows = session.scalars(select(m.Method).order_by(m.Method.name, m.Method.version))
        return [method_dict(r) for r in rows]


def approved_methods(store: Any) -> list[dict[str, Any]]:
    """The methods an analysis may use (approved versions), by name and version."""
    return [x for x in list_methods(store) if x["status"] == "approved"]


def get_method(store: Any, ref: str) -> dict[str, Any]:
    """One method with its document and, where a stored calibration was made under it, the
    detection limit that calibration implies for the product's refractive index."""
    with store.read() as session:
        row = method_row(session, ref)
        doc = document_of(row)
        info = method_dict(row) | {
            "document": doc.model_dump(mode="json", by_alias=True),
            "yaml": row.yaml_text,
        }
        newest = session.scalar(
            select(m.BeadCalibration)
            .where(m.BeadCalibration.method_id == row.id)
            .order_by(m.BeadCalibration.id.desc())
            .limit(1)
        )
        limit = None
        if newest is not None and doc.product_refractive_index is not None:
            limit = detection_limit_nm(
                as_calibration(newest),
                doc.product_refractive_index,
                wavelength_nm=doc.acquisition.wavelength_nm,
            )
        info["detection_limit"] = {
            "refractive_index": doc.product_refractive_index,
            "calibration": newest.id if newest is not None else None,
            "detection_limit_nm": limit,
            "reportable_from_nm": doc.reportable_range_nm[0],
            "below_limit": bool(limit is not None and doc.reportable_range_nm[0] < limit),
        }
        return info


# ---- analyses under a method ---------------------------------------------------------------------
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
    stamp its record carries (:func:`stamp`)."""

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
