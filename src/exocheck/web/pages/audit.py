"""The audit trail: searched by lot, user, action and dates, paged, and downloaded as CSV.

Both routes read the same query parameters and call the same library function
(:mod:`exocheck.store.audit`) as ``GET /api/v1/audit``: what the page shows is what the CSV holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from exocheck.errors import ExocheckError
from exocheck.paging import Page, check_paging
from exocheck.store.audit import AuditFilter, audit_actions, audit_csv
from exocheck.web.deps import PageUser, Svc
from exocheck.web.pages.common import query_url, render
from exocheck.web.services import http_status

router = APIRouter()
FILTERS = ("lot", "user", "action", "since", "until")


def _filters(
    lot: str | None, user: str | None, action: str | None, since: str | None, until: str | None
) -> dict[str, str]:
    values = (lot, user, action, since, until)
    return {k: (v or "").strip() for k, v in zip(FILTERS, values, strict=True)}


@router.get("/audit")
def audit(
    request: Request,
    user: PageUser,
    svc: Svc,
    lot: str | None = None,
    user_name: Annotated[str | None, Query(alias="user")] = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    page: str | None = None,
) -> Response:
    """The audit trail, newest first, 50 events a page; a search that cannot run (an unknown
    lot, a date that does not read) shows the form again with its reason."""
    form = _filters(lot, user_name, action, since, until)
    error, status = None, 200
    try:
        wanted = AuditFilter.parse(**form)
        number, size = check_paging(page)
        found = svc.audit(user, wanted, page=number, per_page=size, newest_first=True)
    except ExocheckError as exc:
        error, status, found = str(exc), http_status(exc), Page()
    context: dict[str, Any] = {
        "page": found,
        "form": form,
        "lot": form["lot"] if error is None else "",
        "error": error,
        "actions": audit_actions(svc.store),
        "csv_url": query_url("/audit.csv", form),
        "page_url": lambda n: query_url("/audit", form, page=n),
        "filtered": any(form.values()),
    }
    return render(request, "audit.html", context, status=status)


@router.get("/audit.csv")
def audit_csv_download(
    user: PageUser,
    svc: Svc,
    lot: str | None = None,
    user_name: Annotated[str | None, Query(alias="user")] = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Response:
    """Every event the search matches, oldest first, as CSV (the page's filters, the page's
    authority; cells that a spreadsheet would run as formulas are prefixed with ``'``)."""
    form = _filters(lot, user_name, action, since, until)
    events = svc.audit_export(user, AuditFilter.parse(**form))
    name = "audit-trail" + (f"-{_ascii(form['lot'])}" if form["lot"] else "") + ".csv"
    return StreamingResponse(
        audit_csv(events),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _ascii(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)[:80]
