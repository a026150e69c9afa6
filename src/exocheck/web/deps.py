"""Dependencies of the routes: the services, who is asking (API token or page cookie), CSRF.

Authentication is checked before anything else on every route except the two login routes:
API routes answer 401 without a valid ``Authorization: Bearer`` token, pages send the browser to
the login page. Every form of a page carries the session's CSRF token; a POST without it, or with
another, is refused (403) before it does anything. Role checks happen in the actions themselves
(:func:`exocheck.auth.roles.require`), so the same rule holds for every shell.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from exocheck.auth import SessionView
from exocheck.web.services import Services

COOKIE = "exocheck_session"
LOGIN_COOKIE = "exocheck_login_csrf"


class LoginRequired(Exception):
    """A page was asked for without a live session: go to the login page."""


def services(request: Request) -> Services:
    return request.app.state.services


def _idle_s(request: Request) -> float:
    return services(request).settings.idle_timeout_min * 60.0


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_session(request: Request) -> SessionView:
    """The session of the request's bearer token, or 401."""
    found = services(request).accounts.session(
        bearer_token(request), idle_timeout_s=_idle_s(request)
    )
    if found is None:
        raise HTTPException(
            401,
            "not authenticated: log in with POST /api/v1/login and send "
            "'Authorization: Bearer TOKEN' (sessions end after inactivity)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


def page_session(request: Request) -> SessionView:
    """The session of the request's cookie; otherwise the browser goes to the login page."""
    found = services(request).accounts.session(
        request.cookies.get(COOKIE), idle_timeout_s=_idle_s(request)
    )
    if found is None:
        raise LoginRequired()
    request.state.session = found
    return found


async def page_form_session(
    request: Request, session: Annotated[SessionView, Depends(page_session)]
) -> SessionView:
    """:func:`page_session` for a form POST: the form's CSRF token must be the session's."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf_token):
        raise HTTPException(
            403, "the form's CSRF token is missing or wrong: reload the page and try again"
        )
    return session


def any_session(request: Request) -> SessionView:
    """A bearer token or a page cookie (the API documentation serves both)."""
    if bearer_token(request):
        return api_session(request)
    return page_session(request)


ApiUser = Annotated[SessionView, Depends(api_session)]
PageUser = Annotated[SessionView, Depends(page_session)]
FormUser = Annotated[SessionView, Depends(page_form_session)]
Svc = Annotated[Services, Depends(services)]
