"""Certificate of analysis: HTML (Jinja2) and PDF (WeasyPrint).

The certificate shows the issuing organisation (name, address and logo of the keyring's
letterhead), the product and lot, the specification version, what the particle measurement rests
on (date, analyst, instrument and software version, videos and tracks, dilution, temperature,
calibration, or a prominent "uncalibrated", and the detection limit below which particles are
not seen), every criterion with value, limit and result (each size or count claim stated
relative to the detection limit), the method, instrument and calibration of every measurement
("not recorded" where a record names none; "NO METHOD RECORDED" only for a particle measurement
made without a method, by :func:`exocheck.methods.stamps.lacks_method`), the storage
conditions of the product's stability studies, the decision in words that follow it (released,
rejected, or a draft with a watermark on every page), the signer's comment, the size
distribution with the specification window shaded, the particle count against the label claim, the product's control chart (limits
only from :data:`~exocheck.qc.comparability.MIN_LOTS_FOR_LIMITS` lots, never below zero), the
SHA-256 of every raw input, and who signed when, every person by printed name and user name
("Quinn Quist (quinn)"). An optional section gives the particles per unit
predicted at expiry (from a stability study), rendered only when given.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ConfigDict

from exocheck import __version__
from exocheck.errors import AnalysisError, ParameterError
from exocheck.methods.stamps import METHOD_KINDS, lacks_method, method_label, method_of
from exocheck.qc.comparability import (
    MIN_LOTS_FOR_LIMITS,
    capability,
    control_chart,
    particles_per_unit,
)
from exocheck.qc.evidence import CALIBRATION_CODES
from exocheck.qc.release import (
    concentration_caveat,
    fmt,
    is_control_role,
    quantities_used,
    quantity_value,
    role_name,
)
from exocheck.qc.specification import (
    LabelClaimCriterion,
    RangeCriterion,
    SizeFractionCriterion,
    Specification,
)
from exocheck.records import atomic_write_bytes, atomic_write_text
from exocheck.report import plots

if TYPE_CHECKING:
    from exocheck.certify.keys import Letterhead


class ExpiryPrediction(BaseModel):
    """Remaining particles at expiry, from a stability study (``exocheck.qc.stability``)."""

    model_config = ConfigDict(extra="forbid")

    expiry: datetime | str
    particles_per_unit: float
    lower_95: float
    label_claim: float | None = None
    note: str | None = None


def printed_value(criterion) -> str:
    """A criterion's value as the certificate prints it (and its ``coa.json`` states it)."""
    if criterion.kind == "misev_completeness" and isinstance(criterion.value, int | float):
        return f"{criterion.value:.2f}"
    return criterion.display_value


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("exocheck.report", "templates"), autoescape=select_autoescape(["html"])
    )
    env.filters["sci"] = lambda v: "—" if v is None else fmt(float(v))
    env.filters["printed_value"] = printed_value
    return env


def _size_figure(lot_data, spec: Specification, limit_nm: float | None) -> str | None:
    nta = lot_data.nta
    if nta is None or not nta.size.density:
        return None
    windows = []
    for c in spec.criteria:
        if isinstance(c, SizeFractionCriterion):
            windows.append((*c.window_nm, f"{c.name} (≥ {c.min_fraction:.0%})"))
        elif isinstance(c, RangeCriterion) and c.quantity in ("size.mode_nm", "size.d50_nm"):
            low = c.min if c.min is not None else 0.0
            high = c.max if c.max is not None else max(nta.size.bin_edges_nm)
            windows.append((low, high, f"{c.name}: {low:g}–{high:g} nm"))
    marks = {
        k: v
        for k, v in (
            ("D10", nta.size.d10_nm),
            ("D50", nta.size.d50_nm),
            ("D90", nta.size.d90_nm),
            ("mode", nta.size.mode_nm),
        )
        if v is not None
    }
    return _data_uri(plots.size_distribution_svg(nta.size, windows, marks, limit_nm))


def _claim_figure(lot_data, spec: Specification) -> str | None:
    claim = lot_data.particles_per_unit_claim
    criterion = next((c for c in spec.criteria if isinstance(c, LabelClaimCriterion)), None)
    value, interval = quantity_value(lot_data, "particles_per_unit")
    if claim is None or value is None:
        return None
    tolerance = criterion.tolerance_percent if criterion else 20.0
    return _data_uri(
        plots.claim_svg(value, interval, claim, tolerance, f"particles per {lot_data.unit_name}")
    )


def detection_limit_nm(record) -> float | None:
    """The detection limit (nm) a particle record states: the smallest diameter whose in-focus
    scatter reaches the detection threshold (``diagnostics.detection_limit_nm``, recorded by
    :func:`exocheck.nta.analyze.detection_limit_nm`); ``None`` when the record has none (no
    refractive index given, or an instrument export)."""
    if record is None:
        return None
    value = (record.diagnostics or {}).get("detection_limit_nm")
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _reported_from_nm(record) -> float | None:
    """Where the record's size distribution starts (its first bin edge), nm."""
    edges = getattr(record.size, "bin_edges_nm", None) if record.size is not None else None
    return float(edges[0]) if edges else None


def detection_limit_notes(spec: Specification, limit_nm: float | None) -> dict[str, str]:
    """What each size or count criterion of ``spec`` claims, relative to the detection limit,
    by criterion name: a size fraction is a fraction of the particles above the limit (a window
    reaching below it says that its lower part is not seen), a size statistic is one of those
    particles, a count counts only them. Without a recorded limit, each says that particles
    below the unknown limit are not counted. Criteria of neither kind have no note."""
    notes: dict[str, str] = {}
    above = (
        f"particles above the detection limit of {limit_nm:.0f} nm"
        if limit_nm is not None
        else "particles the instrument detected (detection limit not recorded)"
    )
    for c in spec.criteria:
        used = quantities_used(c)
        if isinstance(c, SizeFractionCriterion):
            low, high = c.window_nm
            note = f"of {above}"
            if limit_nm is not None and high <= limit_nm:
                note += (
                    f"; the whole range {low:g}–{high:g} nm lies below the detection limit: "
                    "its particles are not seen"
                )
            elif limit_nm is not None and low < limit_nm:
                note += (
                    f"; the range starts below the limit: particles of {low:g}–{limit_nm:.0f} nm "
                    "are not seen and not counted"
                )
        elif "size" in used:
            note = f"of {above}"
            low = getattr(c, "min", None)
            if limit_nm is not None and low is not None and low < limit_nm:
                note += (
                    f"; the lower limit ({low:g} nm) is below the detection limit: smaller "
                    "values cannot be seen"
                )
        elif "concentration" in used:
            note = f"counts only {above}"
        else:
            continue
        notes[c.name] = note
    return notes


def _parse_day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return None


def _entry(record: dict[str, Any], key: str) -> dict[str, Any] | str | None:
    """``record[key]``, or the same key in its ``settings`` or ``instrument_summary``: a dict,
    a plain text, or ``None`` for nothing usable."""
    for where in (record, record.get("settings"), record.get("instrument_summary")):
        if isinstance(where, dict):
            value = where.get(key)
            if isinstance(value, dict) and value:
                return value
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


_KINDS = {
    "nta": "particle measurement (NTA)",
    "protein": "protein assay",
    "markers": "marker panel",
    "safety": "safety tests",
}


def _day(value: Any) -> str | None:
    """An ISO date or time as its day (``2026-12-08``); other text as it is."""
    day = _parse_day(value)
    return day.isoformat() if day is not None else _text(value)


def _citation(
    record_id: int,
    kind: str,
    record: dict[str, Any],
    measured_at: datetime | None = None,
    stored: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Method, instrument and calibration of one stored measurement, as the record states
    them; each part ``None`` where the record has none (the certificate says "not recorded").

    Whether a record is "no method" is :func:`exocheck.methods.stamps.lacks_method`'s to say:
    a particle measurement made without an exocheck method. A measurement exocheck's methods
    do not cover (protein assay, marker panel, safety tests; ``covered`` False) cites the
    procedure its record names, if any, and no instrument or calibration.

    ``measured_at``: when it was measured, where the record itself states no date;
    ``stored``: what the store adds to the record's stamp (``method_reference``, the stored
    calibration's ``standard_name``), from :func:`method_citations`.
    """
    stored = stored or {}
    what = _KINDS.get(kind, kind)
    if kind == "nta" and isinstance(record.get("labelled"), dict):
        marker = record["labelled"].get("marker")
        what = f"labelled fraction{f' ({marker})' if marker else ''} (NTA)"
    measured = _parse_day(record.get("date")) or _parse_day(measured_at)
    base = {"id": record_id, "what": what, "measured": measured}
    if kind not in METHOD_KINDS:
        return base | {
            "covered": False,
            "no_method": False,
            "method": _text(record.get("method")),
            "method_version": False,
            "method_note": None,
            "instrument_model": None,
            "instrument_serial": None,
            "calibration": {},
            "calibration_overdue": False,
        }
    stamp = method_of(record)
    instrument = _entry(record, "instrument")
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    if stamp is not None and stamp.get("instrument_serial"):
        model = _text(stamp.get("instrument_model"))
        serial = _text(stamp.get("instrument_serial"))
    elif isinstance(instrument, dict):
        model, serial = _text(instrument.get("model")), _text(instrument.get("serial"))
    else:
        model = _text(instrument)
        if model is None and source.get("instrument") not in (None, "exocheck"):
            model = _text(source.get("instrument"))  # a vendor export names its instrument
        summary = record.get("instrument_summary")
        serial = _text(summary.get("serial")) if isinstance(summary, dict) else None
    calibration = _entry(record, "calibration")
    cal: dict[str, Any] = {}
    if isinstance(calibration, dict):
        standard = _text(calibration.get("standard")) or _text(stored.get("standard_name"))
        bead = calibration.get("bead_diameter_nm")
        known = calibration.get("known_concentration_per_ml")
        certified = ", ".join(
            x
            for x in (
                f"{bead:g} nm" if isinstance(bead, int | float) else "",
                f"{fmt(known)} per mL" if isinstance(known, int | float) else "",
            )
            if x
        )
        if standard is None and isinstance(bead, int | float):
            standard = f"{bead:g} nm bead standard"
            if isinstance(known, int | float):
                standard += f" at {fmt(known)} /mL"
        elif standard is not None and certified and not _text(calibration.get("standard")):
            standard += f" (certified {certified})"
        number = calibration.get("calibration_id")
        cal = {
            "standard": standard,
            "lot": _text(calibration.get("lot")) or _text(calibration.get("standard_lot")),
            "date": _day(calibration.get("date") or calibration.get("made_at")),
            "due": _day(calibration.get("due") or calibration.get("valid_until")),
            "id": number if isinstance(number, int) else None,
        }
    elif (record.get("concentration") or {}).get("calibrated") is False:
        cal = {"none": "uncalibrated (nominal detection volume)"}
    due = _parse_day(cal.get("due"))
    overdue = measured is not None and due is not None and due < measured
    return base | {
        "covered": True,
        "no_method": lacks_method(record, kind),
        "method": method_label(record) if stamp is not None else None,
        "method_version": stamp is not None and stamp.get("version") is not None,
        "method_note": _text(stored.get("method_reference")),
        "instrument_model": model,
        "instrument_serial": serial,
        "calibration": cal,
        "calibration_overdue": overdue,
    }


def _stored_details(session, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """What the store knows beyond a particle record's stamp: the title and reference of its
    method (``method_reference``) and the product name of its calibration's standard
    (``standard_name``). Nothing for a record without a method or a stored calibration."""
    from exocheck.errors import ExocheckError
    from exocheck.methods.calibrations import calibration_row
    from exocheck.methods.methods import document_of, method_row

    if kind not in METHOD_KINDS or method_of(record) is None:
        return {}
    out: dict[str, Any] = {}
    try:
        doc = document_of(method_row(session, method_label(record)))
        out["method_reference"] = " · ".join(x for x in (doc.title, doc.reference) if x) or None
    except ExocheckError:  # a method of another store (an imported record): the stamp only
        pass
    number = (method_of(record) or {}).get("calibration_id")
    if number is not None:
        try:
            out["standard_name"] = calibration_row(session, number).standard_name
        except ExocheckError:
            pass
    return out


def method_citations(store, lot: str) -> list[dict[str, Any]]:
    """The method, instrument and calibration of every measurement of ``lot`` that counts
    (withdrawn ones left out), oldest first, read from the stored records (:func:`_citation`)
    and, for the method's reference and the standard's name, the store's methods and
    calibrations."""
    with store.read() as session:
        row = store.lot_row(session, lot)
        withdrawn = set(store.withdrawn_of(row))
        rows = sorted(
            (
                (x.id, x.kind, x.data if isinstance(x.data, dict) else {}, x.measured_at)
                for x in row.measurements
                if x.id not in withdrawn
            ),
            key=lambda r: r[0],
        )
        details = [_stored_details(session, kind, data) for _, kind, data, _ in rows]
    return [
        _citation(i, kind, data, at, extra)
        for (i, kind, data, at), extra in zip(rows, details, strict=True)
    ]


def storage_conditions(store, product: str) -> list[dict[str, Any]]:
    """What the product's stability studies say of storage: each study's name, the conditions
    it holds, the labelled one (the protocol's, or the study's only one; ``None`` when neither
    names one) and its storage class."""
    from exocheck.errors import ExocheckError

    out = []
    for study in store.list_studies(product):
        protocol = study.get("protocol") or {}
        try:
            labelled = store.study_condition(study["study"]).label
        except ExocheckError:  # several conditions and none named on the label
            labelled = None
        out.append(
            {
                "study": study["study"],
                "conditions": study["conditions"],
                "labelled": labelled,
                "storage": protocol.get("storage"),
                "lots": len(study["lots"]),
                "attribute": study["attribute"],
            }
        )
    return out


def people(store, state: dict[str, Any]) -> Callable[..., str]:
    """``person(user, printed=None)``: how the certificate names a person, the same way
    everywhere: "Quinn Quist (quinn)", the printed name (from the user accounts, else from a
    signature) with the user name; the user name alone where no other printed name is known."""
    from exocheck.auth.accounts import Accounts

    names = {u.name: u.printed_name for u in Accounts(store).list_users()}
    for s in state.get("signatures", []):
        names.setdefault(s["user"], s["printed_name"])

    def person(user: str | None, printed: str | None = None) -> str:
        if not user:
            return printed or "—"
        printed = printed or names.get(user)
        return f"{printed} ({user})" if printed and printed != user else user

    return person


def _chart(
    product_lots, lot: str, claim: float | None, spec: Specification, unit_name: str = "unit"
):
    points = [(d.lot, particles_per_unit(d)) for d in product_lots]
    points = [(name, v) for name, v in points if v is not None]
    if len(points) < 2:
        return None, None
    labels, values = zip(*points, strict=True)
    chart = control_chart(values, labels, attribute="particles per unit")
    enough = len(points) >= MIN_LOTS_FOR_LIMITS
    if not enough:  # too few lots for limits or rules: the values and the specification only
        chart = chart.model_copy(update={"violations": []})
    chart = chart.model_copy(update={"lcl": max(chart.lcl, 0.0)})  # no count below zero
    criterion = next((c for c in spec.criteria if isinstance(c, LabelClaimCriterion)), None)
    limits: tuple[float | None, float | None] = (None, None)
    cap = None
    if claim is not None and criterion is not None:
        tol = criterion.tolerance_percent / 100
        limits = (claim * (1 - tol), claim * (1 + tol))
        if enough:
            try:
                cap = capability(values, *limits, attribute="particles per unit")
            except AnalysisError:
                cap = None
    svg = plots.control_chart_svg(
        chart, lot, f"particles per {unit_name}", limits, with_limits=enough
    )
    return {
        "figure": _data_uri(svg),
        "chart": chart,
        "capability": cap,
        "limits": enough,
        "lots": len(points),
        "min_lots": MIN_LOTS_FOR_LIMITS,
    }, chart


def _labelled_inputs(data, listed: list[dict[str, Any]] | None = None) -> list[dict[str, str]]:
    """The raw inputs of the lot's labelled-fraction records, each with its role (scatter,
    fluorescence, a control) and the marker; inputs already ``listed`` are not repeated."""
    seen = {x["sha256"] for x in listed or []}
    out = []
    for record in data.labelled_records:
        labelled = record.labelled
        roles = {name: role for role, names in labelled.inputs.items() for name in names}
        for name, sha in record.provenance.inputs.items():
            if sha in seen:
                continue
            seen.add(sha)
            prefix, _, rest = name.partition("/")
            if rest and prefix in labelled.inputs:  # "role/file", as labelled-fraction keys them
                role, name = prefix, rest
            else:
                role = roles.get(name) or roles.get(Path(name).name)
            what = f"labelled fraction{f' ({labelled.marker})' if labelled.marker else ''}"
            if role:
                control = " control" if is_control_role(role) else ""
                what = f"{what}: {role_name(role)}{control}"
            out.append({"filename": name, "sha256": sha, "role": what})
    return out


def _basis(info: dict[str, Any], data) -> dict[str, Any] | None:
    """What the particle measurement rests on, for the certificate's "Measurement" table."""
    nta = data.nta
    if nta is None:
        return None
    settings = nta.settings or {}
    calibration = settings.get("calibration")
    caveat = concentration_caveat(data)
    if set(CALIBRATION_CODES) & set(data.accepted_deviations):
        caveat = None  # accepted as a deviation: listed with the evidence warnings
    if isinstance(calibration, dict):
        optics = ", ".join(
            f"{label} {calibration[key]:.4g}{unit}"
            for key, label, unit in (
                ("pixel_size_um", "pixel", " µm"),
                ("fps", "", " fps"),
                ("exposure_ms", "exposure", " ms"),
                ("wavelength_nm", "laser", " nm"),
                ("camera_gain", "gain", ""),
            )
            if isinstance(calibration.get(key), int | float)
        ).replace(" , ", ", ")
        bead = calibration.get("bead_diameter_nm")
        known = calibration.get("known_concentration_per_ml")
        depth = calibration.get("depth_um")
        calibrated = "; ".join(
            part
            for part in (
                f"bead standard{f' {bead:g} nm' if bead else ''}"
                + (f" at {fmt(known)} /mL" if isinstance(known, int | float) else ""),
                f"detection depth {depth:.3g} µm" if isinstance(depth, int | float) else "",
                f"optics {optics}" if optics else "",
            )
            if part
        )
    elif nta.concentration.calibrated is None:
        calibrated = f"the instrument's own ({nta.source.instrument})"
    else:
        calibrated = None
    entries = [x for x in info.get("measurements", []) if x["kind"] == "nta"]
    # who entered the particle measurement itself (a labelled-fraction record entered later
    # is another measurement)
    index = next((i for i, x in enumerate(data.nta_all) if x is nta), len(entries) - 1)
    analyst = entries[index]["created_by"] if 0 <= index < len(entries) else None
    n_videos = len(nta.per_video) or len(nta.source.files) or None
    inputs = [
        {"filename": name, "sha256": sha, "role": "raw input"}
        for name, sha in nta.provenance.inputs.items()
    ]
    if nta.source.file_sha256 and nta.source.file_sha256 not in nta.provenance.inputs.values():
        name = nta.source.files[0] if nta.source.files else "instrument export"
        inputs.append({"filename": name, "sha256": nta.source.file_sha256, "role": "raw input"})
    inputs += _labelled_inputs(data, inputs)
    stamp = method_of(nta)
    if stamp is not None and stamp.get("instrument_serial"):  # the register's instrument
        instrument = f"{stamp.get('instrument_model') or 'model not recorded'}, s/n " + str(
            stamp["instrument_serial"]
        )
    else:
        instrument = " ".join(x for x in (nta.source.instrument, nta.source.software_version) if x)
    return {
        "date": nta.date or nta.provenance.created,
        "analyst": analyst,
        "method": method_label(nta) if stamp is not None else None,
        "instrument": instrument,
        "exocheck_version": nta.provenance.exocheck_version,
        "videos": n_videos,
        "tracks": nta.tracks.count or None,
        "dilution": nta.concentration.dilution_factor or nta.dilution_factor,
        "temperature_c": nta.temperature_c,
        "calibration": calibrated,
        "detection_limit_nm": detection_limit_nm(nta),
        "reported_from_nm": _reported_from_nm(nta),
        "refractive_index": (settings.get("conditions") or {}).get("refractive_index"),
        "caveat": caveat,
        "warnings": nta.warnings,
        "inputs": inputs,
    }


#: the lot statuses a certificate states (a lot still open gets a draft)
_STATED = {"released": "RELEASED", "rejected": "REJECTED", "recalled": "RECALLED"}


def coa_context(
    store,
    lot: str,
    *,
    expiry: ExpiryPrediction | dict | None = None,
    draft: bool = False,
    generated_at: datetime | None = None,
    letterhead: Letterhead | None = None,
) -> dict[str, Any]:
    """Everything the certificate template shows, gathered from the store.

    ``draft`` marks the document as an unsigned copy (watermarked on every page, even for a
    signed-off lot); ``generated_at`` is the time it states (default: now; a draft states the
    time of the lot's last change, so the same lot state gives the same document);
    ``letterhead`` (:meth:`exocheck.certify.Keyring.letterhead`) is the issuing organisation
    its header shows.
    """
    from exocheck.lots.status import lot_state

    info = store.lot_info(lot)
    state = lot_state(store, lot)
    result = store.evaluate(lot)
    spec = store.get_specification(info["specification"])
    data = store.lot_data(lot)
    product = next(p for p in store.list_products() if p["product"] == info["product"])
    chart, _ = _chart(
        store.product_lot_data(info["product"]),
        lot,
        data.particles_per_unit_claim,
        spec,
        data.unit_name,
    )
    if isinstance(expiry, dict):
        expiry = ExpiryPrediction.model_validate(expiry)
    basis = _basis(info, data)
    limit_nm = detection_limit_nm(data.nta)
    person = people(store, state)
    inputs = (basis["inputs"] if basis else _labelled_inputs(data)) + [
        {
            "filename": a["filename"],
            "sha256": a["sha256"],
            "size_bytes": a["size_bytes"],
            "role": "stored file",
        }
        for a in info["attachments"]
    ]
    return {
        "product": product,
        "lot": info,
        "spec": spec,
        "result": result,
        "basis": basis,
        "inputs": inputs,
        "status": _STATED.get(state["status"]),
        "lot_status": state["status"],
        "missing": state["missing"],
        "final_signer": _final_signer(info, state, person),
        "signed_at": _signed_at(info, state),
        "person": person,
        "accepted_by": _acceptances(result.caveats, state, person),
        "letterhead": letterhead,
        "detection_limit_nm": limit_nm,
        "limit_notes": detection_limit_notes(spec, limit_nm) if data.nta is not None else {},
        "citations": method_citations(store, lot),
        "storage": storage_conditions(store, info["product"]),
        "draft": draft or _STATED.get(state["status"]) is None,
        "caveats": result.caveats,
        "withdrawn": [x for x in info["measurements"] if x.get("withdrawn")],
        "size_figure": _size_figure(data, spec, limit_nm),
        "claim_figure": _claim_figure(data, spec),
        "chart": chart,
        "nta": data.nta,
        "protein": data.protein,
        "attachments": info["attachments"],
        "expiry": expiry,
        "spec_sha256": info["specification_sha256"],
        "software": f"exocheck {__version__}",
        "generated_at": (generated_at or datetime.now().astimezone())
        .astimezone()
        .strftime("%Y-%m-%d %H:%M %Z"),
    }


def _acceptances(caveats, state: dict[str, Any], person: Callable[..., str]) -> dict[str, str]:
    """Who accepted each accepted deviation, named as everywhere on the certificate
    (:func:`people`), by caveat code: the ``deviation accepted`` signature the lot's data
    credit with it (same printed name, role and reason); the store's own line where none
    matches."""
    out = {}
    for caveat in caveats:
        if not caveat.accepted:
            continue
        out[caveat.code] = caveat.accepted
        for s in state.get("signatures", []):
            head = f"{s['printed_name']} ({s['role']}), "
            if (
                s["meaning"] == "deviation accepted"
                and s.get("deviation") == caveat.code
                and caveat.accepted.startswith(head)
                and caveat.accepted.endswith(s["reason"])
            ):
                out[caveat.code] = (
                    f"{person(s['user'], s['printed_name'])}, role {s['role']}, "
                    f"{s['signed_at'][:10]}: {s['reason']}"
                )
    return out


def _final_signer(
    info: dict[str, Any], state: dict[str, Any], person: Callable[..., str]
) -> str | None:
    """Who signed the lot off (named by ``person``, see :func:`people`): the approver of its
    release record, else whoever signed it ``rejected``."""
    if info["approved_by"]:
        return person(info["approved_by"])
    for s in reversed(state["signatures"]):
        if s["meaning"] == "rejected":
            return person(s["user"], s["printed_name"])
    return None


def _signed_at(info: dict[str, Any], state: dict[str, Any]) -> str | None:
    """When the lot was signed off (``2026-12-08 03:00 UTC``): its release record's time, else
    that of the signature ``rejected`` that ended it; None while it is open."""
    at = info["approved_at"]
    if at is None:
        text = next(
            (s["signed_at"] for s in reversed(state["signatures"]) if s["meaning"] == "rejected"),
            None,
        )
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
        except ValueError:
            return text
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at is not None else None


def render_html(
    store,
    lot: str,
    *,
    expiry: ExpiryPrediction | dict | None = None,
    certificate: dict[str, Any] | None = None,
    draft: bool = False,
    generated_at: datetime | None = None,
    letterhead: Letterhead | None = None,
) -> str:
    """The certificate of analysis of ``lot`` as a standalone HTML page. ``certificate`` (from
    :mod:`exocheck.certify`) adds the certificate id, the signatures and the QR code of the
    verification URL; the page then prints the criteria values that ``coa.json`` states.
    ``draft``, ``generated_at`` and ``letterhead``: see :func:`coa_context`."""
    context = coa_context(
        store,
        lot,
        expiry=expiry,
        draft=draft,
        generated_at=generated_at,
        letterhead=letterhead,
    )
    return _environment().get_template("coa.html").render(**context, certificate=certificate)


#: What to install where WeasyPrint cannot load pango (a system library, not a Python package).
PANGO_INSTRUCTION = (
    "install pango ('sudo apt install libpango-1.0-0 libpangoft2-1.0-0' on Debian/Ubuntu, "
    "'sudo dnf install pango' on Fedora, 'brew install pango' on macOS)"
)


def pdf_unavailable() -> str | None:
    """Why PDF certificates cannot be rendered here, as one line saying what to install; None
    when they can (WeasyPrint imports and finds pango)."""
    try:
        import weasyprint  # noqa: F401
    except ImportError:
        return "PDF output needs WeasyPrint: pip install weasyprint"
    except OSError:  # WeasyPrint is installed; its system library pango is not
        return f"PDF output needs pango, which was not found: {PANGO_INSTRUCTION}"
    return None


#: a last page whose text reaches less far down than this (a fraction of its text area) is
#: nearly empty: the certificate is laid out again, its figures smaller, to pull it onto the
#: page before (a signature block alone on a page reads as if the page had been left blank)
MIN_LAST_PAGE_FILL = 0.25
#: the page's top and bottom margins (coa.css ``@page``), in CSS pixels (96 per inch)
_PAGE_MARGIN_PX = 16 / 25.4 * 96
#: successively more compact layouts tried against a nearly empty last page
_COMPACT_CSS = (
    "img.figure { width: 88%; } h2 { margin-top: 7pt; } th, td { padding: 1.8pt 4pt; }",
    "img.figure { width: 76%; } h2 { margin-top: 5pt; } th, td { padding: 1.2pt 3pt; }",
)


def last_page_fill(document) -> float:
    """How far down its text area the last page of a rendered certificate (a WeasyPrint
    document) is filled, from the position of the end marker ``#coa-end``: 0 to 1."""
    page = document.pages[-1]
    anchor = page.anchors.get("coa-end")
    if anchor is None:
        return 1.0
    body = page.height - 2 * _PAGE_MARGIN_PX
    return min(max((anchor[1] - _PAGE_MARGIN_PX) / body, 0.0), 1.0)


def render_pdf(html: str) -> bytes:
    """Render certificate HTML to PDF bytes with WeasyPrint.

    Where the last page would be nearly empty (:data:`MIN_LAST_PAGE_FILL`), the certificate is
    laid out again with smaller figures and tighter tables, and the first layout that needs a
    page less is taken; where none does, the full-size layout stays. The text is the same in
    every layout."""
    missing = pdf_unavailable()
    if missing is not None:
        raise ParameterError(f"{missing}; or write .html instead")
    from weasyprint import HTML

    document = HTML(string=html).render()
    if len(document.pages) > 1 and last_page_fill(document) < MIN_LAST_PAGE_FILL:
        for css in _COMPACT_CSS:
            compact = HTML(string=html.replace("</head>", f"<style>{css}</style></head>", 1))
            tried = compact.render()
            if len(tried.pages) < len(document.pages):
                document = tried
                break
    return document.write_pdf()


def write_coa(
    store, lot: str, path: str | Path, *, expiry: ExpiryPrediction | dict | None = None
) -> Path:
    """Write the certificate of ``lot`` to ``path``: PDF for ``.pdf``, HTML for ``.html``/``.htm``.
    The file appears complete or not at all."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise ParameterError(f"{path}: the certificate file must end in .pdf or .html")
    html = render_html(store, lot, expiry=expiry, draft=True)
    if suffix == ".pdf":
        atomic_write_bytes(path, render_pdf(html))
    else:
        atomic_write_text(path, html)
    return path
