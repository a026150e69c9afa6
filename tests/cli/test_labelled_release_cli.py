"""``exocheck release`` of a lot with a labelled-fraction record: the fraction and its interval on
one line of an 80-column table, and why a labelled_fraction criterion is missing."""

from __future__ import annotations

import sys
from pathlib import Path


def test_release_shows_labelled_fraction_and_why_one_is_not_evaluable(exo, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
    from qc_factories import SPEC_YAML, fill_lot, labelled_measurement

    from exocheck.store import Store

    spec = SPEC_YAML + (
        "  - {name: CD63+, kind: labelled_fraction, marker: CD63, min_percent: 5}\n"
        "  - {name: CD63+ 60-200 nm, kind: labelled_fraction, marker: CD63, min_percent: 5,"
        " size_range_nm: [60, 200]}\n"
        "  - {name: CD81+, kind: labelled_fraction, marker: CD81, min_percent: 1}\n"
    )
    db = tmp_path / "qc.db"
    with Store.open(db) as store:
        store.add_product("EXO-1", particles_per_unit=2e10, fill_volume_ml=1.0, by="ana")
        store.add_specification("spec.yaml", text=spec, product="EXO-1", by="qa")
        fill_lot(store, "L1", particles_per_ml=2.2e10)
    record = tmp_path / "labelled.json"
    labelled_measurement().save(record)
    added = exo("measurement", "add", "L1", str(record), "--db", db, "--by", "cai")
    assert added.code == 0, added.stderr
    outcome = exo("release", "L1", "--db", db)
    assert outcome.code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if line.startswith("CD63+  "))
    assert "6.4 % (5.6–7.3 %)" in row and "pass" in row
    flat = " ".join(outcome.stdout.split())
    assert (
        "CD63+ 60-200 nm: not evaluable: the record's size classes (edges 50, 100, 200, 400, "
        "1000 nm) do not cover 60–200 nm exactly; give a range on class edges" in flat
    )
    assert "CD81+: no labelled-fraction record for CD81 (the lot has: CD63)" in flat
    assert "lot L1: incomplete" in flat
