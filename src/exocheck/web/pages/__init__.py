"""Server-rendered pages (Jinja2 templates, htmx for the live parts)."""

from __future__ import annotations

from fastapi import APIRouter

from exocheck.web.pages import audit, auth, catalog, lots, methods, users, verify

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(lots.router)
router.include_router(audit.router)
router.include_router(catalog.router)
router.include_router(methods.router)
router.include_router(users.router)
router.include_router(verify.router)
