"""The instrument register, analytical methods and stored bead calibrations
(:mod:`exocheck.methods`): list and show for everyone logged in; adding an instrument (QA), a
method (analysts, QA) and approving a method (QA, with the password again, never its author)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field

from exocheck.auth.roles import require
from exocheck.methods import calibrations, instruments, methods
from exocheck.methods.instruments import UnknownRecord
from exocheck.web.deps import ApiUser, Svc
from exocheck.web.services import NotFound

router = APIRouter(tags=["methods"])
T = TypeVar("T")


def _found(read: Callable[[], T]) -> T:
    """``read()``, an unknown instrument, method or calibration answered 404."""
    try:
        return read()
    except UnknownRecord as exc:
        raise NotFound(str(exc)) from None


class NewInstrument(BaseModel):
    serial: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200)
    laser_wavelength_nm: float | None = None
    filter_set: str | None = Field(None, max_length=200)
    camera: str | None = Field(None, max_length=200)
    pixel_size_um: float | None = None
    qualification_due: str | None = Field(None, max_length=40)
    calibration_due: str | None = Field(None, max_length=40)


class NewMethod(BaseModel):
    yaml: str = Field(min_length=1, max_length=100_000, description="the method document")


class Approval(BaseModel):
    password: str = Field(max_length=1024)


@router.get("/instruments")
def list_instruments(user: ApiUser, svc: Svc) -> list[dict[str, Any]]:
    """The instrument register, by serial."""
    return instruments.list_instruments(svc.store)


@router.post("/instruments", status_code=201, responses={403: {}, 409: {}})
def add_instrument(body: NewInstrument, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """Add an instrument (QA); 409 when the serial is in the register already."""
    require(user.user.role, "instrument.edit")
    return instruments.add_instrument(svc.store, **body.model_dump(), by=user.user.name)


@router.get("/instruments/{serial}", responses={404: {}})
def get_instrument(serial: str, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """One instrument, with what is past due on it (``due``)."""
    return _found(lambda: instruments.get_instrument(svc.store, serial))


@router.get("/methods")
def list_methods(user: ApiUser, svc: Svc, approved: bool = False) -> list[dict[str, Any]]:
    """Every method version (only approved ones with ``?approved=true``)."""
    if approved:
        return methods.approved_methods(svc.store)
    return methods.list_methods(svc.store)


@router.post("/methods", status_code=201, responses={403: {}, 409: {}})
def add_method(body: NewMethod, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """Store a method version as a draft (analysts, QA); 409 for a version stored with other
    text."""
    require(user.user.role, "method.add")
    return methods.add_method(svc.store, "the method", text=body.yaml, by=user.user.name)


@router.get("/methods/{ref}", responses={404: {}})
def get_method(ref: str, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """One method (``NAME@VERSION``, or ``NAME``: its newest version) with its document."""
    return _found(lambda: methods.get_method(svc.store, ref))


@router.post("/methods/{ref}/approval", status_code=201, responses={401: {}, 403: {}, 404: {}})
def approve_method(ref: str, body: Approval, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """QA approves a method version with the password again: 401 wrong password, 403 another
    role or the method's author (four eyes), 409 approved already."""
    return _found(lambda: svc.approve_method(user, ref, body.password))


@router.get("/calibrations")
def list_calibrations(
    user: ApiUser, svc: Svc, instrument: str | None = None
) -> list[dict[str, Any]]:
    """Stored bead calibrations, newest first (of one instrument with ``?instrument=``)."""
    return _found(lambda: calibrations.list_calibrations(svc.store, instrument))


@router.get("/calibrations/{calibration_id}", responses={404: {}})
def get_calibration(calibration_id: int, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """One stored calibration, with the calibration it holds."""
    return _found(lambda: calibrations.get_calibration(svc.store, calibration_id))
