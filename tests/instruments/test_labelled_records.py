"""The labelled fraction from instrument exports: ZetaView scatter and fluorescence runs.

The vendor's ratio of fluorescent to scatter concentration assumes one detection volume for both
channels. It is computed only when the runs state the same settings; runs recorded with
different sensitivity, frame rate or minimum trace length (as in a lab's real HEK EV reports:
95 vs 80, 15 vs 30 frames per cycle, 7 vs 15) are refused in one line.
"""

from __future__ import annotations

import pytest

from exocheck.errors import ParameterError
from exocheck.instruments import read_measurement
from exocheck.nta.labelled import labelled_fraction_from_records

from .builders import Truth, ZetaViewOptions, zetaview_size

ALIKE = {"sensitivity": 85, "fpsec": 30, "min_tracelength": 10}


def _read(tmp_path, name, truth, opts):
    path = tmp_path / name
    path.write_bytes(zetaview_size(truth, opts).txt)
    return read_measurement(path)


def _runs(tmp_path, fluorescence: dict, fraction: float = 0.05, traces: int = 4000):
    scatter = _read(tmp_path, "s_size_488.txt", Truth(), ZetaViewOptions(traces=20000, **ALIKE))
    fl = _read(
        tmp_path,
        "f_size_488_F500.txt",
        Truth(measured_per_ml=Truth().measured_per_ml * fraction),
        ZetaViewOptions(filter_wavelength="500", traces=traces, seed=2, **fluorescence),
    )
    return scatter, fl


def test_runs_recorded_alike_give_the_fraction_with_its_interval(tmp_path):
    scatter, fl = _runs(tmp_path, ALIKE)
    m = labelled_fraction_from_records({"scatter": [scatter], "fluorescence": [fl]}, "CD63")
    lab = m.labelled
    # same size distribution in both channels: 5 % in every class, within Poisson noise
    assert lab.fraction == pytest.approx(0.05, rel=0.05)
    assert lab.ci.low < 0.05 < lab.ci.high
    assert all(c.fraction == pytest.approx(0.05, rel=0.3) for c in lab.classes if c.fraction)
    assert lab.marker == "CD63" and m.channel.mode == "fluorescence"
    assert sorted(lab.inputs) == ["fluorescence", "scatter"]


def test_runs_recorded_with_other_settings_are_refused(tmp_path):
    scatter, fl = _runs(tmp_path, {"sensitivity": 95, "fpsec": 15, "min_tracelength": 7})
    with pytest.raises(ParameterError, match="sensitivity 85 vs 95") as err:
        labelled_fraction_from_records({"scatter": [scatter], "fluorescence": [fl]})
    assert "\n" not in str(err.value)


def test_a_scatter_run_given_as_fluorescence_is_refused(tmp_path):
    scatter, fl = _runs(tmp_path, ALIKE)
    with pytest.raises(ParameterError, match="recorded in scatter mode, not fluorescence"):
        labelled_fraction_from_records(
            {"scatter": [scatter], "fluorescence": [fl], "unstained": [scatter]}
        )


def test_exports_from_the_command_line(tmp_path, monkeypatch, capsys):
    import sys

    from exocheck.cli.main import run

    for name, data in [
        ("s_size_488.txt", zetaview_size(Truth(), ZetaViewOptions(traces=20000, **ALIKE)).txt),
        (
            "f_size_488_F500.txt",
            zetaview_size(
                Truth(measured_per_ml=2e7),
                ZetaViewOptions(filter_wavelength="500", traces=3000, seed=3, **ALIKE),
            ).txt,
        ),
    ]:
        (tmp_path / name).write_bytes(data)
    args = ["exocheck", "labelled-fraction", "--scatter", str(tmp_path / "s_size_488.txt"),
            "--fluorescence", str(tmp_path / "f_size_488_F500.txt"), "--out",
            str(tmp_path / "out")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", args)
    try:
        run()
    except SystemExit as done:  # a successful run may also leave through SystemExit(0)
        assert done.code in (0, None)
    assert (tmp_path / "out" / "result.json").is_file()
    assert (tmp_path / "out" / "labelled_fraction.png").is_file()
    # a video and an export together are refused
    monkeypatch.setattr(sys, "argv", [*args[:-1], str(tmp_path / "out2"), "--control-unstained",
                                      str(tmp_path / "v.tif")])  # fmt: skip
    (tmp_path / "v.tif").write_bytes(b"II*\x00")
    with pytest.raises(SystemExit) as refused:
        run()
    assert refused.value.code == 2
    assert "either videos or measurement records" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()
