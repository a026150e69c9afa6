"""The REST API under ``/api/v1`` (JSON; errors are ``{"detail": "one line"}``)."""

from __future__ import annotations

from fastapi import APIRouter

from exocheck.web.api import auth, lots, methods

router = APIRouter(prefix="/api/v1")
router.include_router(auth.router)
router.include_router(lots.router)
router.include_router(methods.router)
