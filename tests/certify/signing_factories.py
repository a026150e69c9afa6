"""Shared helpers of the signing tests (a module of its own name: several test folders have a
``conftest``)."""

from __future__ import annotations

import sys
from pathlib import Path

from exocheck.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, fill_lot, lognormal_measurement

PUBLIC_URL = "https://verify.example.org"


def stock(store: Store, folder: Path, lots: tuple[str, ...] = ("L-OK",)) -> None:
    """Product EXO-1, the test specification, and ``lots`` released (entered by ana, signed
    by bob), the first with its raw file stored."""
    store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
    (folder / "spec.yaml").write_text(SPEC_YAML)
    store.add_specification(folder / "spec.yaml", product="EXO-1", by="qa")
    for i, lot in enumerate(lots):
        fill_lot(store, lot, particles_per_ml=2.1e10)
        if i == 0:
            raw = folder / f"{lot}.json"
            lognormal_measurement(particles_per_ml=2.1e10).save(raw)
            store.add_measurement(
                lot, lognormal_measurement(particles_per_ml=2.1e10), by="ana", original_file=raw
            )
        store.approve(lot, by="bob", comment="meets the release specification")
