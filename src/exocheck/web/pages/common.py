"""Templates and the helpers every page uses (autoescaped Jinja2; nothing inline to execute)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from exocheck.qc.release import fmt


def _sci(value: Any) -> str:
    if value is None:
        return "—"
    try:
        return fmt(float(value))
    except (TypeError, ValueError):
        return str(value)


def _compact(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    env = Jinja2Templates(directory=str(files("exocheck.web") / "templates"))
    env.env.filters["sci"] = _sci
    env.env.filters["compact"] = _compact
    # a path segment: everything percent-encoded, '/' included (Jinja's urlencode keeps '/')
    env.env.filters["urlencode"] = lambda value: quote(str(value), safe="")
    return env


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page; ``user`` and ``csrf`` come from the request's session when it has one."""
    session = getattr(request.state, "session", None)
    base = {
        "user": session.user if session else None,
        "csrf": session.csrf_token if session else "",
    }
    return templates().TemplateResponse(request, name, base | context, status_code=status)


def render_error(request: Request, status: int, message: str, *, login: bool = False) -> Response:
    return render(
        request, "error.html", {"status": status, "message": message, "login": login}, status=status
    )
