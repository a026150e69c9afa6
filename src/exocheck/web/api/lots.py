"""Lots, measurements, jobs, release evaluation, signatures, certificates and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from exocheck.paging import check_paging
from exocheck.store.audit import AuditFilter
from exocheck.web.deps import ApiUser, Svc
from exocheck.web.services import NotFound

router = APIRouter(tags=["lots"])


class LotRow(BaseModel):
    lot: str
    product: str
    status: Literal["awaiting data", "in review", "released", "rejected", "recalled"]
    decision: str | None
    missing: list[str] = Field(default_factory=list, description="criteria still lacking data")


class NewLot(BaseModel):
    lot: str = Field(min_length=1, max_length=200)
    product: str = Field(min_length=1, max_length=200)
    specification: str | None = Field(None, max_length=200)
    manufactured: str | None = Field(None, max_length=40)
    expiry: str | None = Field(None, max_length=40)


class SignatureIn(BaseModel):
    meaning: Literal["reviewed", "approved", "rejected", "deviation accepted"]
    reason: str = Field(min_length=1, max_length=2000)
    password: str = Field(max_length=1024)
    deviation: str | None = Field(
        None, max_length=100, description="with 'deviation accepted': the warning's code"
    )


class ResultIn(BaseModel):
    """Protein (``ug_per_ml``, optional ``method``), or a marker panel or safety tests
    (``results``: name -> value, e.g. ``{"CD63": "present"}``, ``{"endotoxin_eu_per_ml": 0.05}``)."""

    kind: Literal["protein", "markers", "safety"]
    ug_per_ml: float | None = None
    method: str | None = Field(None, max_length=100)
    results: dict[str, str | float] = Field(default_factory=dict, max_length=200)


class RecallIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    password: str = Field(max_length=1024)


class WithdrawalIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    password: str = Field(max_length=1024)


@router.get("/lots", response_model=list[LotRow])
def list_lots(user: ApiUser, svc: Svc) -> list[dict[str, Any]]:
    """Every lot: ``[{"lot", "product", "status", "decision", "missing"}]``."""
    keys = ("lot", "product", "status", "decision", "missing")
    return [{k: row[k] for k in keys} for row in svc.overview()]


@router.post("/lots", status_code=201)
def create_lot(body: NewLot, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """Create a lot (analysts); 409 when the number exists, 404 for an unknown product."""
    return svc.create_lot(
        user,
        body.lot,
        body.product,
        specification=body.specification,
        manufactured=body.manufactured,
        expiry=body.expiry,
    )


@router.get("/lots/{lot}")
def get_lot(lot: str, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """The lot: record, status, decision, measurements and signatures."""
    return svc.lot(lot)


@router.post(
    "/lots/{lot}/measurements",
    status_code=201,
    responses={202: {"description": "a video: its analysis job"}, 413: {}, 415: {}},
)
async def add_measurement(lot: str, request: Request, user: ApiUser, svc: Svc):
    """Multipart ``file``: an exocheck ``result.json`` or an instrument export → 201 with the
    measurement; one or more videos (several ``file`` parts: replicates of one sample, each
    analysed as its own job; at most ``EXOCHECK_MAX_UPLOAD_FILES``, all together at most
    ``EXOCHECK_MAX_UPLOAD_MB``), with ``fps``, ``pixel_size_um``, ``temperature_c`` and optional
    ``exposure_ms``, ``viscosity_mpa_s``, ``refractive_index``, ``camera_gain``,
    ``wavelength_nm``, ``dilution_factor`` and a bead ``calibration_file`` (JSON from
    ``exocheck calibrate``) → 202 ``{"job": FIRST_ID, "jobs": [ID, ...]}``. ``method``
    (``NAME[@VERSION]``, approved) analyses the videos under the method on ``instrument`` (a
    serial of the register; ``calibration``: a stored calibration's id, by default the
    instrument's newest), or enters an export as made under it; ``override`` is the reason to
    use a value that contradicts the file or the method."""
    form = await request.form()
    files = [f for f in form.getlist("file") if hasattr(f, "filename")]
    calibration_file = next(
        (f for f in form.getlist("calibration_file") if hasattr(f, "filename")), None
    )
    kind, body = await svc.upload(user, lot, files, dict(form), calibration_file)
    return JSONResponse(body, status_code=202 if kind == "job" else 201)


@router.get("/jobs/{job_id}")
def get_job(job_id: int, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """``{"status": "queued|running|done|failed", "progress", "lot", "measurement", ...}``."""
    status = svc.analyses.status(svc.store, job_id)
    if status is None:
        raise NotFound(f"no job {job_id}")
    return status


@router.get("/lots/{lot}/release")
def release(lot: str, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """The evaluation against the specification, as ``exocheck release LOT --json``."""
    svc.check_lot(lot)
    return svc.store.evaluate(lot).summary()


@router.get("/lots/{lot}/signatures")
def signatures(lot: str, user: ApiUser, svc: Svc) -> list[dict[str, Any]]:
    """The lot's signatures, oldest first."""
    svc.check_lot(lot)
    return svc.signing.lot_state(lot)["signatures"]


@router.post("/lots/{lot}/signatures", status_code=201, responses={401: {}, 403: {}, 423: {}})
def sign(lot: str, body: SignatureIn, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """Sign with the password again: 401 wrong password, 403 role or four-eyes, 409 state."""
    return svc.sign(
        user,
        lot,
        meaning=body.meaning,
        reason=body.reason,
        password=body.password,
        deviation=body.deviation,
    )


@router.post("/lots/{lot}/results", status_code=201)
def add_result(lot: str, body: ResultIn, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """Enter protein, a marker panel or safety tests (analysts): ``{"measurement": ID}``."""
    form: dict[str, Any] = {"method": body.method or ""}
    if body.kind == "protein":
        form["ug_per_ml"] = "" if body.ug_per_ml is None else repr(body.ug_per_ml)
    else:
        form["pairs"] = "\n".join(f"{k}={v}" for k, v in body.results.items())
    return {"measurement": svc.add_result(user, lot, body.kind, form), "lot": lot}


@router.post("/lots/{lot}/recall", status_code=201, responses={401: {}, 403: {}})
def recall(lot: str, body: RecallIn, user: ApiUser, svc: Svc) -> dict[str, Any]:
    """Recall a released lot (QA, password again): its status is then ``recalled`` everywhere
    and its certificates say so on the verification page."""
    return svc.recall(user, lot, reason=body.reason, password=body.password)


@router.post(
    "/lots/{lot}/measurements/{measurement}/withdrawal",
    status_code=201,
    responses={401: {}, 403: {}, 409: {}},
)
def withdraw(
    lot: str, measurement: int, body: WithdrawalIn, user: ApiUser, svc: Svc
) -> dict[str, Any]:
    """Withdraw a wrong measurement with an electronic signature (password again): the row
    stays, marked withdrawn, and the decision is computed again."""
    return svc.withdraw(user, lot, measurement, reason=body.reason, password=body.password)


@router.get(
    "/lots/{lot}/coa.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def coa(lot: str, user: ApiUser, svc: Svc) -> Response:
    """The certificate of analysis: the document ``exocheck coa`` writes (signed when the
    service has signing keys and the lot is signed off; a watermarked draft otherwise; none for
    a recalled lot, 403)."""
    pdf = svc.coa_pdf(lot, user)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{_ascii(lot)}-CoA.pdf"'},
    )


@router.get(
    "/audit",
    responses={200: {"headers": {"X-Total-Count": {"description": "events matching in all"}}}},
)
def audit(
    request: Request,
    response: Response,
    user: ApiUser,
    svc: Svc,
    lot: str | None = None,
    user_name: Annotated[str | None, Query(alias="user")] = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    page: str | None = None,
    per_page: str | None = None,
) -> list[dict[str, Any]]:
    """The audit trail, oldest first, one page at a time (``page`` from 1, ``per_page`` events,
    50 by default, at most 500): of one lot (``lot``, 404 when unknown), one user (``user``),
    one action or family of actions (``action=signature`` gives ``signature.refused`` and
    ``signature.failed``), from ``since`` to ``until`` (ISO dates, a date until the end of that
    day, or date-times; UTC). ``X-Total-Count`` says how many events match; ``Link`` gives the
    next and previous pages."""
    wanted = AuditFilter.parse(lot=lot, user=user_name, action=action, since=since, until=until)
    number, size = check_paging(page, per_page)
    found = svc.audit(user, wanted, page=number, per_page=size)
    response.headers["X-Total-Count"] = str(found.total)
    links = []
    for rel, target in (("prev", found.page - 1), ("next", found.page + 1)):
        if 1 <= target <= found.pages:
            url = request.url.include_query_params(page=target, per_page=size)
            links.append(f'<{url}>; rel="{rel}"')
    if links:
        response.headers["Link"] = ", ".join(links)
    return found.items


def _ascii(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)
