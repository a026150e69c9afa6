"""Canonical JSON and its SHA-256: the one way exocheck hashes structured data.

Certificates (``coa.json``), the audit chain and the hashes of stored rows all use RFC 8785
(JSON Canonicalization Scheme): keys sorted by UTF-16 code units, no insignificant whitespace,
numbers in their shortest round-trip form (``1e11`` is ``100000000000``, ``2.0`` is ``2``),
UTF-8. The same value always gives the same bytes, on every platform and database.

:func:`jsonable` first turns what JSON cannot carry into what it can: times become UTC text,
non-finite numbers their names, integers beyond 2**53 their digits as text, tuples lists.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime
from typing import Any

import rfc8785

__all__ = ["canonical_json", "canonical_sha256", "jsonable", "utc_text"]

#: the largest integer RFC 8785 writes as a number (beyond it JSON numbers lose digits)
MAX_SAFE_INTEGER = 2**53 - 1


def utc_text(value: datetime) -> str:
    """``value`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (a naive time is taken as UTC: SQLite
    hands back the UTC times it was given without their zone)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jsonable(value: Any) -> Any:
    """``value`` with every part JSON can carry exactly.

    Times become :func:`utc_text`, dates ISO text, ``nan``/``inf`` the strings ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"``, integers beyond :data:`MAX_SAFE_INTEGER` their digits as
    text, tuples lists; dictionary keys become text.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if type(value) is int and abs(value) > MAX_SAFE_INTEGER:
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical JSON of ``value`` (after :func:`jsonable`), UTF-8."""
    return rfc8785.dumps(jsonable(value))


def canonical_sha256(value: Any) -> str:
    """The SHA-256 (hex) of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
