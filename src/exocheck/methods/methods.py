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
a method (:func:`exocheck.methods.apply.prepare`) takes its acquisition, detection and sizing
settings from it; a value
given on the command line (or a form field) that contradicts the method, like one that
contradicts the video file, is refused unless an override reason is given. The record then
names the method, its version, the instrument's serial and the calibration it used
(:func:`exocheck.methods.stamps.stamp`; read back by :func:`method_of`). A record without one is
"no method" (:func:`method_label`), and a specification that names a method makes its criteria inconclusive
on such a record (:func:`exocheck.qc.evidence.method_caveat`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exocheck.errors import NotAllowed, ParameterError, StoreError
from exocheck.methods.calibrations import as_calibration, detection_limit_nm
from exocheck.methods.document import (  # noqa: F401  (the method document, also named here)
    METHOD_SCHEMA,
    MethodDocument,
    MethodError,
    method_sha256,
    parse_method,
)
from exocheck.methods.instruments import UnknownRecord
from exocheck.methods.stamps import method_label, method_of  # noqa: F401  (public here too)
from exocheck.store import models as m
from exocheck.store.base import aware, check_actor


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
