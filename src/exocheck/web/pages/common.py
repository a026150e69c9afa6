"""Templates and the helpers every page uses (autoescaped Jinja2; nothing inline to execute)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import Response

from exocheck.methods.stamps import lacks_method, method_label
from exocheck.qc.release import fmt
from exocheck.store.audit import changes

#: characters of a value shown in an audit event's summary (the whole record is one click away)
CLIP_CHARS = 160
#: fields of an audit event's record left out of its summary: the row hashes the audit chain
#: keeps (in the full record, and checked by ``exocheck audit verify``)
SUMMARY_LEAVES_OUT = ("rows",)


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


def query_url(path: str, params: dict[str, Any], **changes: Any) -> str:
    """``path`` with the query ``params`` updated by ``changes`` (blank values left out), for the
    links of a search page (its pages, its CSV) that keep what was searched for."""
    merged = {k: v for k, v in (params | changes).items() if v is not None and str(v).strip()}
    return f"{path}?{urlencode(merged)}" if merged else path


def _clip(value: Any, chars: int = CLIP_CHARS) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _dot_breaks(value: Any) -> Markup:
    """Dotted names (``measurement.add.safety``) that may wrap after a dot, not inside a word."""
    return Markup(".<wbr>").join(escape(part) for part in str(value).split("."))


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    env = Jinja2Templates(directory=str(files("exocheck.web") / "templates"))
    env.env.filters["sci"] = _sci
    env.env.filters["compact"] = _compact
    env.env.filters["clip"] = _clip
    env.env.filters["changes"] = lambda event: changes(
        event["before"], event["after"], leave_out=SUMMARY_LEAVES_OUT
    )
    env.env.filters["dot_breaks"] = _dot_breaks
    # a particle record's method (NAME@VERSION), and whether it has none (exocheck.methods' rule)
    env.env.filters["method_label"] = method_label
    env.env.tests["without_method"] = lacks_method
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
