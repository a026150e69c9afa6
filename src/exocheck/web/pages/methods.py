"""The instrument register and the analytical methods (:mod:`exocheck.methods`): lists and
records for everyone logged in; adding an instrument (QA), writing a method (analysts, QA) and
approving one (QA, with the password again, never its author), as the REST API does."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from exocheck.auth.roles import can, require
from exocheck.errors import ExocheckError, ParameterError
from exocheck.methods import calibrations, instruments, methods
from exocheck.methods.instruments import UnknownRecord
from exocheck.web.deps import FormUser, PageUser, Svc
from exocheck.web.pages.common import render
from exocheck.web.services import NotFound, Services, http_status

router = APIRouter()

#: the instrument form's fields: (name, label with the unit, kind, hint)
INSTRUMENT_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("serial", "Serial number", "text", "as on the plate"),
    ("model", "Model", "text", "e.g. NanoSight NS300"),
    ("laser_wavelength_nm", "Laser wavelength (nm)", "number", "e.g. 488"),
    ("filter_set", "Filter set", "text", "optional"),
    ("camera", "Camera", "text", "optional"),
    ("pixel_size_um", "Pixel size (µm)", "number", "e.g. 0.166"),
    ("qualification_due", "Qualification due", "date", "refused for analyses after it"),
    ("calibration_due", "Calibration due", "date", "vendor or metrology calibration"),
)
_LABELS = {name: label for name, label, _, _ in INSTRUMENT_FIELDS}


def _found(read):
    """``read()``, an unknown instrument or method answered 404."""
    try:
        return read()
    except UnknownRecord as exc:
        raise NotFound(str(exc)) from None


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _number(form: Any, name: str) -> float | None:
    text = _text(form, name).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ParameterError(f"{_LABELS[name]} ({name}): not a number: {text[:40]!r}") from None


def method_url(ref: str) -> str:
    return f"/methods/{quote(ref, safe='')}"


# ---- instruments ------------------------------------------------------------------------------
def _instruments_page(
    request: Request, svc: Services, user, *, error: str | None = None, values=None, status=200
) -> Response:
    return render(
        request,
        "instruments.html",
        {
            "instruments": instruments.list_instruments(svc.store),
            "fields": INSTRUMENT_FIELDS,
            "can_add": can(user.user.role, "instrument.edit"),
            "error": error,
            "values": values or {},
        },
        status=status,
    )


@router.get("/instruments")
def instruments_page(request: Request, user: PageUser, svc: Svc) -> Response:
    """The register: every instrument with its model and due dates; QA adds one here."""
    return _instruments_page(request, svc, user)


@router.post("/instruments")
async def add_instrument(request: Request, user: FormUser, svc: Svc) -> Response:
    """Add an instrument to the register (QA), as ``exocheck instrument add`` does."""
    require(user.user.role, "instrument.edit")
    form = await request.form()
    try:
        added = instruments.add_instrument(
            svc.store,
            serial=_text(form, "serial"),
            model=_text(form, "model"),
            laser_wavelength_nm=_number(form, "laser_wavelength_nm"),
            filter_set=_text(form, "filter_set"),
            camera=_text(form, "camera"),
            pixel_size_um=_number(form, "pixel_size_um"),
            qualification_due=_text(form, "qualification_due"),
            calibration_due=_text(form, "calibration_due"),
            by=user.user.name,
        )
    except ExocheckError as exc:
        values = {name: _text(form, name) for name in _LABELS}
        return _instruments_page(
            request, svc, user, error=str(exc), values=values, status=http_status(exc)
        )
    return RedirectResponse(f"/instruments/{quote(added['serial'], safe='')}", status_code=303)


@router.get("/instruments/{serial}")
def instrument_page(serial: str, request: Request, user: PageUser, svc: Svc) -> Response:
    """One instrument: its record, what is past due on it, and its stored bead calibrations."""
    info = _found(lambda: instruments.get_instrument(svc.store, serial))
    return render(
        request,
        "instrument.html",
        {
            "instrument": info,
            "labels": _LABELS,
            "calibrations": calibrations.list_calibrations(svc.store, info["serial"]),
        },
    )


# ---- methods ----------------------------------------------------------------------------------
def _methods_page(
    request: Request, svc: Services, user, *, error: str | None = None, text: str = "", status=200
) -> Response:
    return render(
        request,
        "methods.html",
        {
            "methods": methods.list_methods(svc.store),
            "can_add": can(user.user.role, "method.add"),
            "error": error,
            "text": text,
        },
        status=status,
    )


@router.get("/methods")
def methods_page(request: Request, user: PageUser, svc: Svc) -> Response:
    """Every method version, drafts included; analysts and QA write a new one here."""
    return _methods_page(request, svc, user)


@router.post("/methods")
async def add_method(request: Request, user: FormUser, svc: Svc) -> Response:
    """Store a method version as a draft (analysts, QA), as ``exocheck method add`` does; its
    YAML typed or pasted into the form, or uploaded as a file."""
    require(user.user.role, "method.add")
    form = await request.form()
    text = _text(form, "yaml")
    upload = form.get("yaml_file")
    try:
        if hasattr(upload, "filename") and upload.filename:
            raw = await upload.read(100_001)
            if len(raw) > 100_000:
                raise ParameterError("the method file is larger than 100 kB")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParameterError(f"{upload.filename}: not a UTF-8 text file") from None
        if not text.strip():
            raise ParameterError("give the method's YAML document (typed in, or as a file)")
        if len(text) > 100_000:
            raise ParameterError("the method document is longer than 100 000 characters")
        added = methods.add_method(svc.store, "the method", text=text, by=user.user.name)
    except ExocheckError as exc:
        return _methods_page(request, svc, user, error=str(exc), text=text, status=http_status(exc))
    return RedirectResponse(method_url(added["method"]), status_code=303)


def _method_page(
    request: Request, svc: Services, user, ref: str, *, error: str | None = None, status=200
) -> Response:
    info = _found(lambda: methods.get_method(svc.store, ref))
    role = user.user.role
    return render(
        request,
        "method.html",
        {
            "m": info,
            "doc": info["document"],
            "limit": info["detection_limit"],
            "can_approve": can(role, "method.approve") and info["status"] == "draft",
            "is_author": info["created_by"] == user.user.name,
            "error": error,
        },
        status=status,
    )


@router.get("/methods/{ref}")
def method_page(ref: str, request: Request, user: PageUser, svc: Svc) -> Response:
    """One method (``NAME@VERSION``): its settings, calibration policy, the detection limit its
    newest calibration implies, its approval; QA approves a draft here."""
    return _method_page(request, svc, user, ref)


@router.post("/methods/{ref}/approval")
async def approve_method(ref: str, request: Request, user: FormUser, svc: Svc) -> Response:
    """QA approves a method version with the password again; never its author (four eyes)."""
    form = await request.form()
    try:
        approved = _found(lambda: svc.approve_method(user, ref, _text(form, "password")))
    except NotFound:
        raise
    except ExocheckError as exc:
        return _method_page(request, svc, user, ref, error=str(exc), status=http_status(exc))
    return RedirectResponse(method_url(approved["method"]), status_code=303)
