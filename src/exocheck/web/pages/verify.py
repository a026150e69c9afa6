"""The public verification page of a certificate of analysis (no login).

Anyone holding an exocheck certificate (a clinic, a distributor, a regulator) scans its QR code
and lands here: is it genuine, what is the lot's status now (released, recalled, superseded), and
what did it certify. The page reads :func:`exocheck.certify.verify_certificate_status`; it shows
nothing a certificate does not already print, and no results at all when the stored data no
longer match their signature. Offline checking of the file itself is ``exocheck verify``.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from exocheck.web.deps import Svc
from exocheck.web.pages.common import render

router = APIRouter()

_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@router.get("/verify/{certificate_id}")
def verify_page(certificate_id: str, request: Request, svc: Svc) -> Response:
    """Whether the certificate is genuine, the lot's current status, and its key results."""
    from exocheck.certify import verify_certificate_status

    if not _ID.match(certificate_id):
        status = {"found": False, "certificate_id": certificate_id}
    else:
        status = verify_certificate_status(svc.store, certificate_id)
    code = 200 if status["found"] else 404
    response = render(request, "verify.html", {"cert": status}, status=code)
    response.headers["Cache-Control"] = "no-store"  # a recall must show at once
    return response
