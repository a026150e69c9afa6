"""People (administrators only): add, disable, unlock. Users are never deleted."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from exocheck.auth import ROLES
from exocheck.auth.roles import require
from exocheck.errors import ExocheckError
from exocheck.web.deps import FormUser, PageUser, Svc
from exocheck.web.pages.common import render
from exocheck.web.services import http_status

router = APIRouter()


def _page(request: Request, svc, error: str | None = None, status: int = 200) -> Response:
    return render(
        request,
        "users.html",
        {"users": svc.accounts.list_users(), "roles": ROLES, "error": error},
        status=status,
    )


@router.get("/users")
def users(request: Request, user: PageUser, svc: Svc) -> Response:
    require(user.user.role, "user.manage")
    return _page(request, svc)


@router.post("/users")
async def add_user(request: Request, user: FormUser, svc: Svc) -> Response:
    require(user.user.role, "user.manage")
    form = await request.form()
    try:
        svc.accounts.add_user(
            str(form.get("name") or ""),
            role=str(form.get("role") or ""),
            password=str(form.get("password") or ""),
            by=user.user.name,
            printed_name=str(form.get("printed_name") or "") or None,
        )
    except ExocheckError as exc:
        return _page(request, svc, str(exc), http_status(exc))
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/disable")
def disable(name: str, user: FormUser, svc: Svc) -> Response:
    require(user.user.role, "user.manage")
    svc.accounts.disable_user(name, by=user.user.name)
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/unlock")
def unlock(name: str, user: FormUser, svc: Svc) -> Response:
    require(user.user.role, "user.manage")
    svc.accounts.unlock_user(name, by=user.user.name)
    return RedirectResponse("/users", status_code=303)
