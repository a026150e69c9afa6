"""Electronic signatures of lots now live with the rest of the lot lifecycle in
:mod:`exocheck.lots.signatures`; this module keeps the old import path working."""

from exocheck.lots.signatures import (
    MAX_REASON_CHARS,
    SIGNERS,
    Signing,
    canonical_sha256,
)
from exocheck.lots.status import STATUSES

__all__ = ["MAX_REASON_CHARS", "SIGNERS", "STATUSES", "Signing", "canonical_sha256"]
