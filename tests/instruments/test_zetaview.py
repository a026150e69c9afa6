"""ZetaView size .txt and _11pos.txt: layouts, quirks and the bin-centre definition."""

from __future__ import annotations

import numpy as np
import pytest

from exocheck.errors import FormatError
from exocheck.instruments import detect_format, read_measurement
from exocheck.instruments._text import quantiles_from_bins

from .builders import Truth, ZetaViewOptions, zetaview_positions, zetaview_profile, zetaview_size

NAME = "20210401_0003_EV_lot_17_size_488.txt"


def _write(tmp_path, data, name=NAME):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("header_lines", [74, 76, 89])
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"decimal_comma": True},
        {"newline": "\n", "nul_bytes": True},
        {"old_keys": True, "state_quantiles": False, "decimal_comma": True, "newline": "\n"},
    ],
    ids=["plain", "decimal-comma", "lf-nul", "old-version"],
)
def test_size_export_variants(tmp_path, header_lines, opts):
    export = zetaview_size(opts=ZetaViewOptions(header_lines=header_lines, **opts))
    m = read_measurement(_write(tmp_path, export.txt))
    assert detect_format(tmp_path / NAME) == "zetaview"
    assert m.source.instrument == "ZetaView" and m.source.software_version == "8.06.01 SP1"
    assert m.sample == "EV lot 17"
    assert m.date.isoformat() == "2021-04-01T15:42:48"
    assert m.temperature_c == pytest.approx(25.02)
    assert m.viscosity_mpa_s == pytest.approx(0.8902)
    assert m.tracks.count == 630 == int(export.number.sum())
    # ΣConcentration = measured; × Dilution = original (4 significant digits per bin)
    assert m.concentration.measured_per_ml == pytest.approx(export.measured_per_ml, rel=1e-3)
    assert m.concentration.particles_per_ml == pytest.approx(export.measured_per_ml * 500, rel=1e-3)
    assert m.dilution_factor == 500
    assert len(m.size.density) == 1200 and m.size.bin_edges_nm[:3] == [0.0, 5.0, 10.0]
    for key in ("d10", "d50", "d90", "mean"):
        assert getattr(m.size, f"{key}_nm") == pytest.approx(export.stated[key], abs=2e-3)
    assert m.instrument_summary["Dilution"] == 500
    assert not any("disagrees" in w for w in m.warnings)


def test_quantiles_follow_the_bin_centre_definition(tmp_path):
    export = zetaview_size(Truth(median_nm=72.0, gsd=1.25), ZetaViewOptions(state_quantiles=False))
    m = read_measurement(_write(tmp_path, export.txt))
    computed = m.instrument_summary["from_distribution"]
    for key in ("d10", "d90"):  # not stated in this file: computed by ZetaView's definition
        assert computed[f"{key}_nm"] == pytest.approx(export.stated[key], abs=1e-9)
        assert getattr(m.size, f"{key}_nm") == pytest.approx(export.stated[key], abs=1e-9)
    edges = np.concatenate([[0.0], export.centres + 2.5])
    at_upper = quantiles_from_bins(edges[1:], export.number, start=0.0)
    assert abs(at_upper[1] - export.stated["d50"]) == pytest.approx(2.5, abs=0.01)


def test_empty_run(tmp_path):
    export = zetaview_size(opts=ZetaViewOptions(traces=0))
    m = read_measurement(_write(tmp_path, export.txt))
    assert m.size.density == [] and m.size.d50_nm is None
    assert m.concentration.particles_per_ml == 0.0 and m.tracks.count == 0
    assert any("empty run" in w for w in m.warnings)


def test_sample_name_from_content_not_file_name(tmp_path):
    export = zetaview_size(opts=ZetaViewOptions(sample="Batch 9 retest"))
    m = read_measurement(_write(tmp_path, export.txt, "20210401_0003_other_name_size_488.txt"))
    assert m.sample == "Batch 9 retest"


def test_dilution_not_recorded(tmp_path):
    export = zetaview_size(opts=ZetaViewOptions(dilution_recorded=False))
    m = read_measurement(_write(tmp_path, export.txt))
    assert m.dilution_factor is None
    assert m.concentration.particles_per_ml == m.concentration.measured_per_ml
    assert any("dilution not recorded" in w for w in m.warnings)


def test_missing_size_table_is_a_format_error(tmp_path):
    export = zetaview_size()
    text = export.txt.split(b"Size / nm")[0]
    path = _write(tmp_path, text)
    with pytest.raises(FormatError, match=r"_size_488\.txt.*Size / nm"):
        read_measurement(path)


def test_profile_file_is_refused_clearly(tmp_path):
    path = _write(tmp_path, zetaview_profile(), "20210401_0004_EV_lot_17_zeta.txt")
    with pytest.raises(FormatError, match=r"zeta\.txt.*zeta-potential 'Profile'"):
        read_measurement(path)


def test_position_table_beside_the_size_file(tmp_path):
    export = zetaview_size()
    path = _write(tmp_path, export.txt)
    table, originals = zetaview_positions(
        removed={3: "MIN_TRACES", 8: "GRUBBS_SIZE", 10: "MAX_DRIFT"}
    )
    (tmp_path / "20210401_0003_EV_lot_17_11pos.txt").write_bytes(table)
    m = read_measurement(path)
    assert len(m.per_video) == 11
    assert [v.valid for v in m.per_video].count(False) == 3
    assert m.per_video[9].note == "position removed: MAX_DRIFT"
    assert m.per_video[0].concentration_per_ml == pytest.approx(originals[0], rel=1e-4)
    used = [o for i, o in enumerate(originals) if i + 1 not in (3, 8, 10)]
    assert m.concentration.sd_per_ml == pytest.approx(np.std(used, ddof=1), rel=1e-3)
    removed = [w for w in m.warnings if "removed" in w]
    assert removed == [
        "3 of 11 positions removed by the instrument (MIN_TRACES: 3; GRUBBS_SIZE: 8; MAX_DRIFT: 10)"
    ]
    assert "20210401_0003_EV_lot_17_11pos.txt" in m.source.files


def test_position_table_on_its_own(tmp_path):
    table, originals = zetaview_positions(newline="\n")
    path = _write(tmp_path, table, "20210401_0003_EV_lot_17_11pos.txt")
    assert detect_format(path) == "zetaview-positions"
    m = read_measurement(path)
    used = [o for i, o in enumerate(originals) if i + 1 not in (3, 8)]
    assert m.concentration.particles_per_ml == pytest.approx(np.mean(used), rel=1e-3)
    assert m.dilution_factor == pytest.approx(500, rel=1e-3)
    assert m.size.d50_nm == pytest.approx(110.0)
    assert any("no size distribution" in w for w in m.warnings)


@pytest.mark.parametrize("decimal_comma", [False, True])
def test_separator_row_and_printed_centres(tmp_path, decimal_comma):
    """8.05/8.06: -1,-1,-1,-1,0 ends the linear table (the log table restarts at 4.683 nm);
    centres printed to 4 significant digits stand for the instrument's 2.5 + 5·i nm grid."""
    export = zetaview_size(opts=ZetaViewOptions(decimal_comma=decimal_comma))
    sep = b"-1,000E+0\t" * 4 + b"0,000E+0" if decimal_comma else b"-1.000E+0\t" * 4 + b"0.000E+0"
    assert sep in export.txt
    assert (b"1,002E+3" if decimal_comma else b"1.002E+3") in export.txt  # 1002.5 as printed
    m = read_measurement(_write(tmp_path, export.txt))
    edges = np.asarray(m.size.bin_edges_nm)
    assert edges.size == 1201 and edges[-1] == 6000.0
    assert np.array_equal(edges, 5.0 * np.arange(1201))  # the instrument's grid, exactly
    assert m.tracks.count == 630
    assert m.concentration.measured_per_ml == pytest.approx(export.measured_per_ml, rel=1e-3)


def test_printed_centres_that_are_not_a_grid_are_kept(tmp_path):
    export = zetaview_size()
    # move one centre by 2 nm: not the instrument's grid any more, so the centres are as printed
    data = export.txt.replace(b"\n1.002E+3\t", b"\n1.004E+3\t", 1)
    m = read_measurement(_write(tmp_path, data))
    assert m.size.centres_nm()[200] == pytest.approx(1004.0, abs=1.0)
    assert not np.allclose(np.diff(m.size.bin_edges_nm), 5.0)


@pytest.mark.parametrize("micro", ["\u00b5s", "mus"])
def test_header_variants(tmp_path, micro):
    """Cell S/N without ZetaView S/N, Sample Remarks0..2, mus for µs, nm² as byte 0xB2."""
    export = zetaview_size(
        opts=ZetaViewOptions(
            serial_keys="cell", old_keys=True, micro=micro, temperature_entered=True
        )
    )
    assert b"nm\xb2/s" in export.txt and b"ZetaView S/N" not in export.txt
    path = _write(tmp_path, export.txt)
    assert detect_format(path) == "zetaview"
    m = read_measurement(path)
    # the cell's serial is not the instrument's: an instrument register matches on the latter
    assert m.instrument_summary["serial"] is None
    assert m.instrument_summary["cell serial"] == "0123"
    assert m.instrument_summary["Sample remarks"] == ["diluted in PBS"]
    assert m.settings["exposure [us]"] == "1.500"  # the same key for both spellings
    assert m.settings["diffusion coefficient"][1] == "\u00b5m\u00b2/s"
    assert m.temperature_c == pytest.approx(25.02)
    assert "temperature 25.02 °C was entered by hand, not sensed" in m.warnings
    assert m.size.d50_nm == pytest.approx(export.stated["d50"], abs=2e-3)
