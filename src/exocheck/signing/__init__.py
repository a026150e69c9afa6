"""The former name of :mod:`exocheck.certify` (signing keys, signed certificates, verification,
the audit chain's checks), kept so that code written against it still imports."""

import sys

from exocheck import certify
from exocheck.certify import *  # noqa: F403
from exocheck.certify import (
    audit,
    certificate,
    integrity,
    keys,
    models,
    pdfread,
    status,
    verify,
)

for _name, _module in {
    "audit": audit,
    "certificate": certificate,
    "integrity": integrity,
    "keys": keys,
    "models": models,
    "pdfread": pdfread,
    "status": status,
    "verify": verify,
}.items():
    sys.modules[f"{__name__}.{_name}"] = _module

__all__ = certify.__all__
