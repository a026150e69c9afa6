"""The exocheck web service: FastAPI under uvicorn, REST API under ``/api/v1`` and
server-rendered pages, a shell over the same library as the command line (``exocheck serve``)."""

from __future__ import annotations

from exocheck.web.app import create_app
from exocheck.web.settings import Settings

__all__ = ["Settings", "create_app"]
