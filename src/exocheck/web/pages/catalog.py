"""Products with their specification versions, and stability studies with shelf-life plots."""

from __future__ import annotations

import base64
import io

from fastapi import APIRouter, Request
from fastapi.responses import Response

from exocheck.errors import ExocheckError
from exocheck.web.deps import PageUser, Svc
from exocheck.web.pages.common import render
from exocheck.web.services import NotFound

router = APIRouter()


@router.get("/products")
def products(request: Request, user: PageUser, svc: Svc) -> Response:
    specs = svc.store.list_specifications()
    return render(request, "products.html", {"products": svc.store.list_products(), "specs": specs})


@router.get("/stability")
def studies(request: Request, user: PageUser, svc: Svc) -> Response:
    return render(request, "stability.html", {"studies": svc.store.list_studies(), "study": None})


@router.get("/stability/{name}")
def study(name: str, request: Request, user: PageUser, svc: Svc) -> Response:
    """A study's shelf life (ICH Q1E) with its plot, made on the server."""
    found = [s for s in svc.store.list_studies() if s["study"] == name]
    if not found:
        raise NotFound(f"unknown study {name!r}")
    figure = error = result = None
    try:
        from exocheck.qc.stability_plot import plot_shelf_life

        result = svc.store.shelf_life(name)
        condition = svc.store.study_condition(name)
        frame = svc.store.get_study(name).frame(condition)
        fig = plot_shelf_life(
            result,
            frame,
            time_col="time",
            response_col="value",
            batch_col="lot",
            title=f"{name}: {condition.label}",
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        figure = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    except ExocheckError as exc:
        error = str(exc)
    return render(
        request,
        "stability.html",
        {
            "studies": svc.store.list_studies(),
            "study": found[0],
            "figure": figure,
            "error": error,
            "result": result,
        },
    )
