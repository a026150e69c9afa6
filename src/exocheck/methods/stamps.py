"""The method stamp of a record: which method, version, instrument and calibration it was made
under (``settings["method"]``). Pure functions of the record, without the store, so that a batch
worker stamps what it writes and pages and certificates read it back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from exocheck.records import Measurement

#: the kinds of stored measurement exocheck's methods cover: particle measurements (``nta``,
#: labelled fractions included). Protein assays, marker panels and safety tests are made by
#: other procedures (an assay, a blot, a compendial test), which their records may name; they
#: are never "no method".
METHOD_KINDS = frozenset({"nta"})


def stamp(record: Measurement, applied: Any) -> Measurement:
    """``record`` with the method stamp of ``applied`` (an :class:`~exocheck.methods.methods.
    Applied`, or anything with ``stamp`` and ``warnings``) in its settings
    (``settings["method"]``), the warnings of the preparation, and a warning when its D50 lies
    outside the method's reportable range. The record is changed in place and returned."""
    return stamp_with(record, applied.stamp, applied.warnings)


def stamp_with(
    record: Measurement, method: dict[str, Any], warnings: Sequence[str] = ()
) -> Measurement:
    """:func:`stamp` from the stamp itself and the warnings (what a batch task carries)."""
    notes = list(record.warnings) + list(warnings)
    low, high = method["reportable_range_nm"]
    d50 = record.size.d50_nm
    if d50 is not None and not low <= d50 <= high:
        notes.append(
            f"D50 {d50:.0f} nm lies outside the method's reportable range {low:g}–{high:g} nm"
        )
    record.settings = {**record.settings, "method": dict(method)}
    record.warnings = notes
    return record


def method_of(record: Measurement | Mapping[str, Any]) -> dict[str, Any] | None:
    """The method a particle record was made under (``{"name", "version", "instrument_serial",
    "calibration_id", ...}``), or None: made without one. ``record`` is a
    :class:`~exocheck.records.Measurement` or its stored JSON (``settings["method"]``)."""
    settings = record.get("settings") if isinstance(record, Mapping) else record.settings
    value = settings.get("method") if isinstance(settings, Mapping) else None
    return dict(value) if isinstance(value, Mapping) and value.get("name") else None


def lacks_method(record: Measurement | Mapping[str, Any], kind: str = "nta") -> bool:
    """True when ``record`` is "no method": a measurement of a kind exocheck's methods cover
    (:data:`METHOD_KINDS`) made without one. The one rule the evidence caveat, the certificate
    and the pages apply; a protein assay, a marker panel or a safety test is never "no method"
    (exocheck's methods do not cover them)."""
    return kind in METHOD_KINDS and method_of(record) is None


def method_label(record: Measurement | Mapping[str, Any]) -> str:
    """``NAME@VERSION`` of a record's method, or ``no method``."""
    method = method_of(record)
    return f"{method['name']}@{method['version']}" if method else "no method"
