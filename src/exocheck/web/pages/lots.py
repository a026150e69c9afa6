"""Lots: the dashboard, a lot's page, uploads and their analysis jobs, signing, certificates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from exocheck.auth.roles import can
from exocheck.errors import ExocheckError, ParameterError
from exocheck.lots.listing import LotFilter, status_counts
from exocheck.lots.signatures import SIGNERS
from exocheck.lots.status import FINAL, STATUSES
from exocheck.paging import Page, check_paging
from exocheck.web.deps import FormUser, PageUser, Svc
from exocheck.web.pages.common import query_url, render
from exocheck.web.services import NotFound, Services, http_status
from exocheck.web.uploads import CONDITION_INPUTS, DILUTION_INPUT

router = APIRouter()


def lot_url(lot: str, tail: str = "") -> str:
    """The page of ``lot`` (its number percent-encoded: a URL never breaks on it)."""
    return f"/lots/{quote(lot, safe='')}{tail}"


@router.get("/")
def dashboard(
    request: Request,
    user: PageUser,
    svc: Svc,
    lot: str | None = None,
    product: str | None = None,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    """The lots, newest first, 50 a page, searched by lot number, product and status; the
    number of lots of each status (of those the search's text matches) links to them."""
    form = {
        k: (v or "").strip() for k, v in (("lot", lot), ("product", product), ("status", status))
    }
    error, code = None, 200
    try:
        wanted = LotFilter.parse(**form)
        number, size = check_paging(page)
        found = svc.lots(wanted, page=number, per_page=size)
    except ExocheckError as exc:
        wanted, error, code, found = LotFilter(), str(exc), http_status(exc), Page()
    return render(
        request,
        "dashboard.html",
        {
            "page": found,
            "form": form,
            "error": error,
            "counts": status_counts(svc.overview(), wanted),
            "statuses": STATUSES,
            "products": svc.store.list_products(),
            "can_create": can(user.user.role, "lot.create"),
            "page_url": lambda n: query_url("/", form, page=n),
            "status_url": lambda s: query_url("/", form, status=s, page=None),
            "filtered": any(form.values()),
        },
        status=code,
    )


@router.post("/lots")
async def create_lot(request: Request, user: FormUser, svc: Svc) -> Response:
    form = await request.form()
    info = svc.create_lot(
        user,
        str(form.get("lot") or ""),
        str(form.get("product") or ""),
        specification=str(form.get("specification") or "") or None,
        manufactured=str(form.get("manufactured") or "") or None,
        expiry=str(form.get("expiry") or "") or None,
    )
    return RedirectResponse(lot_url(info["lot"]), status_code=303)


def _lot_context(svc: Services, lot: str, user) -> dict[str, Any]:
    view = svc.lot_view(lot)
    final = view["lot"]["status"] in FINAL
    meanings = [m for m, roles in SIGNERS.items() if user.user.role in roles]
    lot_row = view["lot"]
    chart = bool(lot_row["specification"]) and svc.lots_with_nta(lot_row["product"]) >= 2
    return view | {
        "figures": view["figures"] | {"chart": chart},  # other lots count: not kept with the lot
        "can_upload": can(user.user.role, "measurement.add") and not final,
        "can_sign": bool(meanings) and not final,
        "can_withdraw": can(user.user.role, "measurement.withdraw") and not final,
        "can_recall": can(user.user.role, "lot.recall") and view["lot"]["status"] == "released",
        "withdrawn_keys": {
            f"{lot_row['lot']}/{x['id']}" for x in lot_row["measurements"] if x.get("withdrawn")
        },
        "open_caveats": view["result"].open_caveats if view["result"] is not None else [],
        "meanings": meanings,
        # figures change with any lot of the product: their URLs carry what they depend on
        "version": "-".join(str(x) for x in svc.figure_state()),
    }


@router.get("/lots/{lot}")
def lot_page(lot: str, request: Request, user: PageUser, svc: Svc) -> Response:
    return render(request, "lot.html", _lot_context(svc, lot, user))


FIGURES = ("size", "claim", "chart")


@router.get("/lots/{lot}/figures/{name}.svg")
def figure(lot: str, name: str, user: PageUser, svc: Svc) -> Response:
    """A figure of the lot page, drawn on the server and kept until the data change (the page
    asks for it with what it depends on, so the browser may keep it too)."""
    svc.check_lot(lot)
    svg, current = svc.lot_figure(lot, name) if name in FIGURES else (None, True)
    if svg is None:
        raise NotFound(f"lot {lot} has no {name} figure")
    keep = "private, max-age=3600" if current else "no-store"  # a previous drawing: ask again
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": keep})


async def _dialog(
    request: Request, svc: Services, lot: str, user, error_key: str, act: Callable[[Any], Any]
) -> Response:
    """A lot page dialog's form: ``act(form)``, then back to the lot page; a refusal comes back
    on the lot page with its reason under ``error_key``."""
    form = await request.form()
    try:
        act(form)
    except NotFound:
        raise
    except ExocheckError as exc:
        context = _lot_context(svc, lot, user) | {error_key: str(exc)}
        return render(request, "lot.html", context, status=http_status(exc))
    return RedirectResponse(lot_url(lot), status_code=303)


def _text(form, name: str) -> str:
    return str(form.get(name) or "")


@router.post("/lots/{lot}/sign")
async def sign(lot: str, request: Request, user: FormUser, svc: Svc) -> Response:
    """The signature dialog."""
    return await _dialog(
        request,
        svc,
        lot,
        user,
        "sign_error",
        lambda form: svc.sign(
            user,
            lot,
            meaning=_text(form, "meaning"),
            reason=_text(form, "reason"),
            password=_text(form, "password"),
            deviation=_text(form, "deviation") or None,
        ),
    )


@router.post("/lots/{lot}/recall")
async def recall(lot: str, request: Request, user: FormUser, svc: Svc) -> Response:
    """The recall dialog (QA, password again)."""
    return await _dialog(
        request,
        svc,
        lot,
        user,
        "recall_error",
        lambda form: svc.recall(
            user, lot, reason=_text(form, "reason"), password=_text(form, "password")
        ),
    )


def _measurement_id(form) -> int:
    text = _text(form, "measurement").strip()
    if not text.isdigit():
        raise ParameterError(f"choose the measurement to withdraw (not {text[:20]!r})")
    return int(text)


@router.post("/lots/{lot}/withdraw")
async def withdraw(lot: str, request: Request, user: FormUser, svc: Svc) -> Response:
    """The withdrawal dialog (password again)."""
    return await _dialog(
        request,
        svc,
        lot,
        user,
        "withdraw_error",
        lambda form: svc.withdraw(
            user,
            lot,
            _measurement_id(form),
            reason=_text(form, "reason"),
            password=_text(form, "password"),
        ),
    )


@router.post("/lots/{lot}/results")
async def add_result(lot: str, request: Request, user: FormUser, svc: Svc) -> Response:
    """Protein, markers or safety tests from the lot page's form."""
    return await _dialog(
        request,
        svc,
        lot,
        user,
        "result_error",
        lambda form: svc.add_result(user, lot, _text(form, "kind"), dict(form)),
    )


def _upload_context(svc: Services, lot: str) -> dict[str, Any]:
    """The upload form: its fields, limits, and the approved methods, the register's instruments
    and the stored calibrations to choose from."""
    from exocheck.methods import approved_methods, list_calibrations, list_instruments

    return {
        "lot": lot,
        "fields": CONDITION_INPUTS,
        "dilution": DILUTION_INPUT,
        "max_mb": svc.settings.max_upload_mb,
        "max_files": svc.settings.max_upload_files,
        "methods": approved_methods(svc.store),
        "instruments": list_instruments(svc.store),
        "calibrations": list_calibrations(svc.store),
    }


@router.get("/lots/{lot}/upload")
def upload_form(lot: str, request: Request, user: PageUser, svc: Svc) -> Response:
    svc.check_lot(lot)
    return render(request, "upload.html", _upload_context(svc, lot))


def _files(form, name: str) -> list[Any]:
    return [f for f in form.getlist(name) if hasattr(f, "filename")]


@router.post("/lots/{lot}/upload")
async def upload(lot: str, request: Request, user: FormUser, svc: Svc) -> Response:
    """Replicate videos of one sample (one analysis over all of them, then the page that
    follows it), or one result or instrument export (entered at once, then the lot's page)."""
    form = await request.form()
    calibration_file = next(iter(_files(form, "calibration_file")), None)
    try:
        kind, body = await svc.upload(user, lot, _files(form, "file"), dict(form), calibration_file)
    except NotFound:
        raise
    except ExocheckError as exc:
        context = _upload_context(svc, lot) | {"error": str(exc), "values": dict(form)}
        return render(request, "upload.html", context, status=http_status(exc))
    if kind == "job":
        return RedirectResponse(f"/jobs/{body['job']}", status_code=303)
    return RedirectResponse(lot_url(lot), status_code=303)


@router.get("/jobs/{job_id}")
def job_page(job_id: int, request: Request, user: PageUser, svc: Svc) -> Response:
    """An analysis: its state followed live (htmx polls its live part while it runs), each
    replicate video's own figures and the sample's pooled result, with the method it ran
    under and a link to its measurement."""
    job = svc.analyses.status(svc.store, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    live = request.headers.get("hx-request") == "true"
    return render(request, "job_status.html" if live else "job.html", {"job": job})


@router.get("/lots/{lot}/coa.pdf")
def coa(lot: str, user: PageUser, svc: Svc) -> Response:
    from exocheck.web.api.lots import coa as api_coa

    return api_coa(lot, user, svc)
