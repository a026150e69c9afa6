"""Login, logout and the API documentation (OpenAPI, for logged-in users)."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from exocheck.auth import SessionView
from exocheck.errors import AccountLocked, AuthError
from exocheck.web.deps import COOKIE, LOGIN_COOKIE, FormUser, Svc, any_session
from exocheck.web.pages.common import render

router = APIRouter()


def _secure(request: Request) -> bool:
    mode = request.app.state.settings.secure_cookies
    return mode == "true" or (mode == "auto" and request.url.scheme == "https")


def _next(target: str | None) -> str:
    """Only a path of this site (never another host) is followed after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(
    request: Request, message: str | None = None, status: int = 200, target: str | None = None
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "message": message, "next": _next(target)},
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/login",
        max_age=3600,
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, target=next)


@router.post("/login")
async def login(request: Request, svc: Svc) -> Response:
    form = await request.form()
    sent, expected = form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE)
    if not (isinstance(sent, str) and expected and hmac.compare_digest(sent, expected)):
        return _login_page(request, "the login form expired: please try again", 403)
    name = str(form.get("username") or "")[:200]
    password = str(form.get("password") or "")[:1024]
    target = str(form.get("next") or "/")
    try:
        token, _ = svc.accounts.login(name, password, kind="page")
    except AccountLocked as exc:
        return _login_page(request, str(exc), 423, target)
    except AuthError as exc:
        return _login_page(request, str(exc), 401, target)
    response = RedirectResponse(_next(target), status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/"
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: FormUser, svc: Svc) -> Response:
    svc.accounts.logout(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


Anyone = Annotated[SessionView, Depends(any_session)]


@router.get("/openapi.json")
def openapi(request: Request, user: Anyone) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs(request: Request, user: Anyone) -> Response:
    """The REST API, read from the OpenAPI document."""
    schema = request.app.openapi()
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "responses": sorted(op.get("responses", {})),
                    "body": op.get("requestBody", {}).get("content", {}),
                }
            )
    return render(
        request,
        "docs.html",
        {
            "operations": operations,
            "info": schema["info"],
            "schemas": schema.get("components", {}).get("schemas", {}),
        },
    )
