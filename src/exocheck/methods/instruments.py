"""The instrument register: which instruments the lab has, and whether each may be used today.

An instrument is known by its serial number. It states its model, laser and filter set, camera,
pixel size, and when its qualification and its calibration (by the vendor or the lab's
metrology) fall due; an instrument past either date is not used for an analysis under a method
(:func:`check_current`). Records imported from an instrument export are matched to the register
by the serial the export states (:func:`stated_serial`, :func:`match_instrument`).

Every change is one transaction with its audit event; the shells (``exocheck instrument``, the
REST API) call these functions and only map their errors.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exocheck.errors import ParameterError, StoreError
from exocheck.methods.units import check_values
from exocheck.records import Measurement
from exocheck.store import models as m
from exocheck.store.base import aware, check_actor

#: where instrument exports state the serial number (``instrument_summary`` keys, as the
#: importers of :mod:`exocheck.instruments` write them: ZetaView, ViewSizer)
SERIAL_KEYS = ("serial", "SerialNumber", "Serial Number", "serial_number")


class UnknownRecord(StoreError):
    """No instrument, method or calibration of that name in the store."""


def as_utc(value: date | datetime | str | None, what: str) -> datetime | None:
    """A date or time as an aware UTC datetime (a date alone: its midnight UTC); an ISO string
    is parsed. :class:`ParameterError` (one line) for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ParameterError(f"{what}: not an ISO date (YYYY-MM-DD): {value!r}") from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _text(value: str | None, what: str, required: bool = False) -> str | None:
    text = " ".join((value or "").split())
    if required and not text:
        raise ParameterError(f"an instrument needs a {what}")
    if len(text) > 200:
        raise ParameterError(f"{what}: at most 200 characters")
    return text or None


def instrument_dict(row: m.Instrument) -> dict[str, Any]:
    """An instrument as the shells show it."""
    return {
        "serial": row.serial,
        "model": row.model,
        "laser_wavelength_nm": row.laser_wavelength_nm,
        "filter_set": row.filter_set,
        "camera": row.camera,
        "pixel_size_um": row.pixel_size_um,
        "qualification_due": _iso(row.qualification_due),
        "calibration_due": _iso(row.calibration_due),
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
    }


def _iso(value: datetime | None) -> str | None:
    return aware(value).isoformat() if value is not None else None


def add_instrument(
    store: Any,
    *,
    serial: str,
    model: str,
    by: str,
    laser_wavelength_nm: float | None = None,
    filter_set: str | None = None,
    camera: str | None = None,
    pixel_size_um: float | None = None,
    qualification_due: date | datetime | str | None = None,
    calibration_due: date | datetime | str | None = None,
) -> dict[str, Any]:
    """Add an instrument to the register (one transaction, audited).

    Raises
    ------
    ParameterError
        A missing serial or model, a value outside physical sense for its unit
        (:func:`exocheck.methods.units.check_value`), a date that is not ISO.
    StoreError
        The serial is in the register already.
    """
    by = check_actor(by)
    serial_text = _text(serial, "serial number", required=True)
    model_text = _text(model, "model", required=True)
    check_values(
        {"wavelength_nm": laser_wavelength_nm, "pixel_size_um": pixel_size_um}, style="field"
    )
    for name, value in (
        ("laser_wavelength_nm", laser_wavelength_nm),
        ("pixel_size_um", pixel_size_um),
    ):
        if value is not None and not value > 0:
            raise ParameterError(f"{name} must be > 0, got {value:g}")
    row = m.Instrument(
        serial=serial_text,
        model=model_text,
        laser_wavelength_nm=laser_wavelength_nm,
        filter_set=_text(filter_set, "filter set"),
        camera=_text(camera, "camera"),
        pixel_size_um=pixel_size_um,
        qualification_due=as_utc(qualification_due, "qualification due"),
        calibration_due=as_utc(calibration_due, "calibration due"),
        created_by=by,
    )
    with store.transaction() as session:
        if session.scalar(select(m.Instrument.id).where(m.Instrument.serial == serial_text)):
            raise StoreError(f"instrument {serial_text!r} is in the register already")
        session.add(row)
        session.flush()
        after = instrument_dict(row)
        store.audit(session, by, "instrument.add", "instrument", serial_text, after=after)
    return after


def instrument_row(session: Session, serial: str) -> m.Instrument:
    """The instrument ``serial`` (:class:`StoreError` when it is not in the register)."""
    row = session.scalar(select(m.Instrument).where(m.Instrument.serial == (serial or "").strip()))
    if row is None:
        raise UnknownRecord(
            f"unknown instrument {serial!r} (add it with 'exocheck instrument add')"
        )
    return row


def list_instruments(store: Any) -> list[dict[str, Any]]:
    """Every instrument of the register, by serial."""
    with store.read() as session:
        rows = session.scalars(select(m.Instrument).order_by(m.Instrument.serial))
        return [instrument_dict(r) for r in rows]


def get_instrument(store: Any, serial: str) -> dict[str, Any]:
    """One instrument, with the problems that keep it from use today (``"due"``)."""
    with store.read() as session:
        row = instrument_row(session, serial)
        return instrument_dict(row) | {"due": overdue(row)}


def overdue(row: m.Instrument, at: datetime | None = None) -> list[str]:
    """What is past due on the instrument at ``at`` (default now), in words."""
    at = at or datetime.now(UTC)
    out = []
    for what, due in (
        ("qualification", row.qualification_due),
        ("calibration", row.calibration_due),
    ):
        if due is not None and aware(due) < at:
            out.append(f"its {what} was due {aware(due):%Y-%m-%d}")
    return out


def check_current(row: m.Instrument, at: datetime | None = None) -> None:
    """:class:`ParameterError` when the instrument's qualification or calibration is past due."""
    late = overdue(row, at)
    if late:
        raise ParameterError(
            f"instrument {row.serial} may not be used: {' and '.join(late)} (requalify or "
            "recalibrate it, then update the register)"
        )


def stated_serial(record: Measurement) -> str | None:
    """The instrument's serial number as the record states it: the method stamp of an engine
    record, else the export's own (``instrument_summary``); None when it says none."""
    method = (record.settings or {}).get("method")
    if isinstance(method, dict) and method.get("instrument_serial"):
        return str(method["instrument_serial"])
    summary = record.instrument_summary or {}
    for key in SERIAL_KEYS:
        value = summary.get(key)
        if value not in (None, "", []):
            return str(value[0] if isinstance(value, list) else value).strip() or None
    return None


def match_instrument(session: Session, record: Measurement) -> m.Instrument | None:
    """The register's instrument for the serial ``record`` states (None: none stated, or a
    serial the register does not hold)."""
    serial = stated_serial(record)
    if serial is None:
        return None
    return session.scalar(select(m.Instrument).where(m.Instrument.serial == serial))


def instrument_of(store: Any, record: Measurement) -> dict[str, Any] | None:
    """The register's entry of the instrument a record was measured on, for pages and the
    certificate: ``{"serial", "model", ..., "registered": True}``, or for a serial the register
    does not hold ``{"serial": ..., "registered": False}``; None when the record states none."""
    serial = stated_serial(record)
    if serial is None:
        return None
    with store.read() as session:
        row = match_instrument(session, record)
        if row is None:
            return {"serial": serial, "registered": False}
        return instrument_dict(row) | {"registered": True}
