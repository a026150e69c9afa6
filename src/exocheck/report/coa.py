"""Certificate of analysis: HTML (Jinja2) and PDF (WeasyPrint).

The certificate shows the product and lot, the specification version, what the particle
measurement rests on (date, analyst, instrument and software version, videos and tracks,
dilution, temperature, calibration, or a prominent "uncalibrated"), every criterion with value,
limit and result, the decision in words that follow it (released, rejected, or a draft with a
watermark on every page), the signer's comment, the size distribution with the specification
window shaded, the particle count against the label claim, the product's control chart (limits
only from :data:`~exocheck.qc.comparability.MIN_LOTS_FOR_LIMITS` lots, never below zero), the
SHA-256 of every raw input, and who signed when. An optional section gives the particles per unit
predicted at expiry (from a stability study), rendered only when given.
"""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ConfigDict

from exocheck import __version__
from exocheck.errors import AnalysisError, ParameterError
from exocheck.qc.comparability import (
    MIN_LOTS_FOR_LIMITS,
    capability,
    control_chart,
    particles_per_unit,
)
from exocheck.qc.release import (
    concentration_caveat,
    fmt,
    is_control_role,
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


def _size_figure(lot_data, spec: Specification) -> str | None:
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
    return _data_uri(plots.size_distribution_svg(nta.size, windows, marks))


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


def _chart(product_lots, lot: str, claim: float | None, spec: Specification):
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
    svg = plots.control_chart_svg(chart, lot, "particles per unit", limits, with_limits=enough)
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
    if {"uncalibrated", "calibration-other-optics"} & set(data.accepted_deviations):
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
        calibrated = (
            f"bead standard{f' {bead:g} nm' if bead else ''} at "
            f"{fmt(calibration['known_concentration_per_ml'])} /mL; detection depth "
            f"{calibration['depth_um']:.3g} µm; optics {optics}"
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
    return {
        "date": nta.date or nta.provenance.created,
        "analyst": analyst,
        "instrument": " ".join(
            x for x in (nta.source.instrument, nta.source.software_version) if x
        ),
        "exocheck_version": nta.provenance.exocheck_version,
        "videos": n_videos,
        "tracks": nta.tracks.count or None,
        "dilution": nta.concentration.dilution_factor or nta.dilution_factor,
        "temperature_c": nta.temperature_c,
        "calibration": calibrated,
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
) -> dict[str, Any]:
    """Everything the certificate template shows, gathered from the store.

    ``draft`` marks the document as an unsigned copy (watermarked on every page, even for a
    signed-off lot); ``generated_at`` is the time it states (default: now; a draft states the
    time of the lot's last change, so the same lot state gives the same document).
    """
    from exocheck.lots.status import lot_state

    info = store.lot_info(lot)
    state = lot_state(store, lot)
    result = store.evaluate(lot)
    spec = store.get_specification(info["specification"])
    data = store.lot_data(lot)
    product = next(p for p in store.list_products() if p["product"] == info["product"])
    chart, _ = _chart(
        store.product_lot_data(info["product"]), lot, data.particles_per_unit_claim, spec
    )
    if isinstance(expiry, dict):
        expiry = ExpiryPrediction.model_validate(expiry)
    basis = _basis(info, data)
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
        "final_signer": _final_signer(info, state),
        "draft": draft or _STATED.get(state["status"]) is None,
        "caveats": result.caveats,
        "withdrawn": [x for x in info["measurements"] if x.get("withdrawn")],
        "size_figure": _size_figure(data, spec),
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


def _final_signer(info: dict[str, Any], state: dict[str, Any]) -> str | None:
    """Who signed the lot off: the approver of its release record, else whoever signed it
    ``rejected``."""
    if info["approved_by"]:
        names = {s["user"]: s["printed_name"] for s in state["signatures"]}
        return names.get(info["approved_by"], info["approved_by"])
    for s in reversed(state["signatures"]):
        if s["meaning"] == "rejected":
            return s["printed_name"]
    return None


def render_html(
    store,
    lot: str,
    *,
    expiry: ExpiryPrediction | dict | None = None,
    certificate: dict[str, Any] | None = None,
    draft: bool = False,
    generated_at: datetime | None = None,
) -> str:
    """The certificate of analysis of ``lot`` as a standalone HTML page. ``certificate`` (from
    :mod:`exocheck.certify`) adds the certificate id, the signatures and the QR code of the
    verification URL; the page then prints the criteria values that ``coa.json`` states.
    ``draft`` and ``generated_at``: see :func:`coa_context`."""
    context = coa_context(store, lot, expiry=expiry, draft=draft, generated_at=generated_at)
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


def render_pdf(html: str) -> bytes:
    """Render certificate HTML to PDF bytes with WeasyPrint."""
    missing = pdf_unavailable()
    if missing is not None:
        raise ParameterError(f"{missing}; or write .html instead")
    from weasyprint import HTML

    return HTML(string=html).write_pdf()


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
