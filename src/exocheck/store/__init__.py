"""The exocheck store: products, versioned specifications, lots, measurements, attachments,
signed releases and an append-only audit trail, in SQLite (default) or PostgreSQL.

Every method that changes data is one transaction: it happens entirely or not at all, and it
writes its audit event in the same transaction. Example::

    from exocheck.store import Store

    with Store.open("sqlite:///qc.db") as store:          # None: $EXOCHECK_DATABASE_URL or per-user
        store.add_product("EXO-1", particles_per_unit=1e11, fill_volume_ml=1.0, by="ana")
        store.add_specification("examples/specs/msc-ev-release-v1.yaml", product="EXO-1", by="qa")
        store.add_lot("L001", "EXO-1", by="ana")
        store.add_measurement("L001", measurement, by="ana", original_file="L001.json")
        store.add_protein("L001", 200.0, by="ana")
        store.add_markers("L001", {"CD9": "present", "calnexin": "absent"}, by="ana")
        store.add_safety("L001", {"endotoxin_eu_per_ml": 0.05, "sterility": "negative"}, by="ana")
        result = store.evaluate("L001")                  # ReleaseResult: .decision, .criteria
        store.approve("L001", by="qa-lead")               # four-eyes: not ana
"""

from __future__ import annotations

from exocheck.store.catalog import CatalogMixin
from exocheck.store.lots import LotMixin
from exocheck.store.session import ENV_VAR, default_database_url, resolve_url
from exocheck.store.stability import StabilityMixin


class Store(CatalogMixin, LotMixin, StabilityMixin):
    """A QC database. Open one with :meth:`Store.open`."""


def open_store(url: str | None = None) -> Store:
    """Open (creating or upgrading) the store at ``url`` (see :func:`resolve_url`)."""
    return Store.open(url)


__all__ = ["ENV_VAR", "Store", "default_database_url", "open_store", "resolve_url"]
