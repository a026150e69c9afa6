"""The application factory: :func:`create_app` builds the service from :class:`Settings`.

::

    from exocheck.web import Settings, create_app

    app = create_app(Settings(database_url="sqlite:///qc.db"))   # serve with uvicorn
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exocheck import __version__
from exocheck.errors import ExocheckError
from exocheck.web import api, pages
from exocheck.web.deps import LoginRequired
from exocheck.web.pages.common import render_error
from exocheck.web.services import Services, http_status
from exocheck.web.settings import Settings
from exocheck.web.uploads import UploadTooLarge

log = logging.getLogger("exocheck.web")
#: room for the multipart envelope and form fields around an upload at the size limit
BODY_SLACK_BYTES = 1 << 20

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware: security headers on every response, and a bound on request bodies
    (a declared length over the limit is refused before reading; a body that turns out longer
    stops being read at the limit)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k, v)
                    for k, v in _HEADERS
                    if k not in names and not (static and k == b"cache-control")
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        if declared is not None and declared.isdigit() and int(declared) > limit:
            body = json.dumps(
                {
                    "detail": f"the request is larger than the limit of "
                    f"{(limit - BODY_SLACK_BYTES) / 2**20:g} MB"
                }
            ).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"connection", b"close"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_headers({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise UploadTooLarge(
                        f"the request is larger than the limit of "
                        f"{(limit - BODY_SLACK_BYTES) / 2**20:g} MB"
                    )
            return message

        await self.app(scope, bounded_receive, send_with_headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def create_app(settings: Settings | None = None) -> FastAPI:
    """The exocheck web service on ``settings`` (default: from ``EXOCHECK_*`` variables)."""
    settings = settings or Settings()
    services = Services.start(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        services.close()

    app = FastAPI(
        title="exocheck",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="QC of extracellular-vesicle products: lots, measurements, "
        "release decisions with electronic signatures, certificates, audit trail.",
    )
    app.state.services = services
    app.state.settings = settings

    @app.exception_handler(ExocheckError)
    async def _refused(request: Request, exc: ExocheckError) -> Response:
        status = http_status(exc)
        if _is_api(request):
            return JSONResponse({"detail": _one_line(exc)}, status_code=status)
        return render_error(request, status, _one_line(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if _is_api(request) or exc.status_code == 401:
            return JSONResponse(
                {"detail": _one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers
            )
        return render_error(request, exc.status_code, _one_line(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        message = _one_line(f"{where}: {first.get('msg')}" if where else first.get("msg"))
        if _is_api(request):
            return JSONResponse({"detail": message}, status_code=422)
        return render_error(request, 422, message)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET":
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return render_error(request, 401, "your session has ended: log in again", login=True)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        message = "internal error: the request was not completed"
        if _is_api(request):
            return JSONResponse({"detail": message}, status_code=500)
        return render_error(request, 500, message)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount(
        "/static", StaticFiles(directory=str(files("exocheck.web") / "static")), name="static"
    )
    app.add_middleware(Guard, max_body_bytes=settings.max_upload_bytes + BODY_SLACK_BYTES)
    return app
