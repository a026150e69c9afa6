"""HORIBA ViewSizer 3000 result folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from exocheck.errors import FormatError
from exocheck.instruments import detect_format, read_measurement

from .builders import Truth, quantile_walk, viewsizer_folder


def test_folder_values(tmp_path):
    export = viewsizer_folder(tmp_path)
    m = read_measurement(export.folder)
    assert detect_format(export.folder) == "viewsizer"
    assert m.source.instrument == "ViewSizer 3000" and m.source.software_version == "3.2.1"
    assert m.sample == "EV lot 17 (VS)"  # the SampleInformation <Name>, not the first one
    assert m.date.isoformat() == "2021-04-01T15:42:48"
    assert m.dilution_factor == 500
    # Σ(PSD × width) = particles / (videos × volume) × dilution
    assert m.concentration.particles_per_ml == pytest.approx(export.original_per_ml, rel=1e-5)
    assert m.concentration.measured_per_ml == pytest.approx(export.original_per_ml / 500, rel=1e-5)
    assert m.instrument_summary["bin_width_nm"] == 1.0
    upper = (export.lower_1nm + 1.0).tolist()
    for q, key in ((0.1, "d10_nm"), (0.5, "d50_nm"), (0.9, "d90_nm")):
        expected = quantile_walk(upper, export.counts_1nm.tolist(), q, 0.0)
        assert getattr(m.size, key) == pytest.approx(expected, abs=1e-3)
    assert len(m.per_video) == 20 and not m.per_video[3].valid
    assert any("video 4: no particles" in w for w in m.warnings)
    assert not any("differs" in w for w in m.warnings)
    assert np.sum(m.size.density) == pytest.approx(1.0)


def test_xml_or_results_folder_as_input(tmp_path):
    export = viewsizer_folder(tmp_path, truth=Truth(dilution=None), with_dilution=False)
    xml = next(export.folder.glob("*.xml"))
    results = next(export.folder.glob("Results_*"))
    a, b = read_measurement(xml), read_measurement(results)
    assert a.concentration.particles_per_ml == b.concentration.particles_per_ml
    assert a.dilution_factor is None and any("dilution not recorded" in w for w in a.warnings)


def test_missing_pieces_are_format_errors(tmp_path):
    export = viewsizer_folder(tmp_path)
    shutil.rmtree(next(export.folder.glob("Results_*")))
    with pytest.raises(FormatError, match=r"no results folder \(Results/ or Results_\*\)"):
        read_measurement(export.folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FormatError, match=r"empty.*no ViewSizer settings"):
        read_measurement(empty)


@pytest.mark.parametrize("results_name", ["Results", "Results_EV_lot_17_20210401_154248"])
def test_real_folder_layouts(tmp_path, results_name):
    """A plain ``Results/`` folder, several XML files (numbered, dated, temperature log) and no
    display-bins table: read like the canonical layout."""
    export = viewsizer_folder(
        tmp_path, results_name=results_name, extra_xml=True, display_bins=False
    )
    names = sorted(p.name for p in export.folder.glob("*.xml"))
    assert len(names) == 3 and any("Temperature" in n for n in names)
    results = export.folder / results_name
    assert not any("display" in p.name for p in results.iterdir())
    dated = export.folder / "EV_lot_17_20210401_154248.xml"
    for target in (export.folder, results, dated):
        m = read_measurement(target)
        assert m.concentration.particles_per_ml == pytest.approx(export.original_per_ml, rel=1e-5)
        assert m.sample == "EV lot 17 (VS)"
        assert m.source.files[0] == "EV_lot_17_20210401_154248.xml"  # the dated settings XML
        assert m.source.files[1].startswith(f"{results_name}/")
        assert not any("differs" in w for w in m.warnings)
    # an XML named explicitly is the one read
    assert read_measurement(export.folder / "EV_lot_17_0001.xml").sample == "old"
