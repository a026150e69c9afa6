"""The batch manifest and the command line's inputs: columns, settings, duplicates, bad files.

Each user mistake ends with exit status 2 and one ``error:`` line, before any work (no output
folder, no job).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_support import one_error_line

from exocheck.batch import read_manifest, samples_from_videos
from exocheck.errors import FormatError, ParameterError
from exocheck.nta.analyze import Conditions


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_example_manifest_is_valid():
    example = Path(__file__).resolve().parents[2] / "examples" / "batch-manifest.csv"
    samples = read_manifest(example)
    assert [s.sample for s in samples] == ["EV-lot-A", "EV-lot-B", "beads-100nm"]
    assert [len(s.videos) for s in samples] == [3, 3, 1]
    lot_b = samples[1]
    assert lot_b.dilution_factor == 500.0
    assert lot_b.conditions.temperature_c == 22.0
    assert lot_b.videos[0] == example.parent / "videos" / "lot-B-1.avi"


def test_replicates_settings_defaults_and_comments(tmp_path):
    manifest = _write(tmp_path / "m.csv", (
        "# plate 7, 2026-11-28\n"
        "sample,video,fps,temperature_c,dilution_factor,calibration\n"
        "A,a1.tif,25,,100,\n"
        "\n"
        "A,/data/a2.tif,25,,100,\n"
        "B, b1.tif ,,30.5,,cal/beads.json\n"
    ))  # fmt: skip
    defaults = Conditions(fps=30.0, pixel_size_um=0.166, temperature_c=21.0)
    a, b = read_manifest(manifest, defaults, dilution_factor=None)
    assert a.videos == (tmp_path / "a1.tif", Path("/data/a2.tif"))
    assert (a.conditions.fps, a.conditions.temperature_c, a.conditions.pixel_size_um) == (
        25.0, 21.0, 0.166,
    )  # fmt: skip
    assert a.dilution_factor == 100.0 and a.calibration is None
    assert b.videos == (tmp_path / "b1.tif",)
    assert (b.conditions.fps, b.conditions.temperature_c) == (30.0, 30.5)
    assert b.calibration == tmp_path / "cal" / "beads.json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sample,fps\nA,30\n", "missing column video"),
        ("video,fps\na.tif,30\n", "missing column sample"),
        ("sample,video,pixel_size\nA,a.tif,0.1\n", "unknown column 'pixel_size'"),
        ("sample,video,fps\nA,a.tif,thirty\n", "line 2: fps 'thirty' is not a number"),
        ("sample,video,fps\nA,a.tif,-30\n", "line 2: fps must be a finite number > 0"),
        ("sample,video\nA,a.tif\nB,b.tif\nA,a.tif\n", "line 4: duplicate entry"),
        ("sample,video,fps\nA,a1.tif,30\nA,a2.tif,25\n", "line 3: sample 'A' has other settings"),
        ("sample,video\n../up,a.tif\n", "cannot name a folder"),
        ("sample,video\nA,\n", "no video for sample 'A'"),
        ("sample,video,dilution_factor\nA,a.tif,0.5\n", "dilution_factor must be >= 1"),
        ("sample,video\n", "no rows"),
        ("", "empty"),
    ],
)
def test_bad_manifests_are_refused_with_the_line(tmp_path, text, message):
    manifest = _write(tmp_path / "m.csv", text)
    with pytest.raises(FormatError) as caught:
        read_manifest(manifest)
    assert message.lower() in str(caught.value).lower()
    assert "\n" not in str(caught.value)


def test_unreadable_manifests(tmp_path):
    with pytest.raises(FormatError, match="cannot read it"):
        read_manifest(tmp_path / "absent.csv")
    with pytest.raises(FormatError, match="is a folder"):
        read_manifest(tmp_path)
    binary = tmp_path / "m.xlsx"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xff\xfe\x80\x81")
    with pytest.raises(FormatError, match="not a UTF-8 CSV"):
        read_manifest(binary)


def test_videos_on_the_command_line(tmp_path):
    conditions = Conditions(fps=30.0)
    samples = samples_from_videos([tmp_path / "x1.tif", tmp_path / "y" / "x2.avi"], conditions)
    assert [(s.sample, s.videos) for s in samples] == [
        ("x1", (tmp_path / "x1.tif",)),
        ("x2", (tmp_path / "y" / "x2.avi",)),
    ]
    with pytest.raises(ParameterError, match="duplicate entry: video"):
        samples_from_videos([tmp_path / "x1.tif", tmp_path / "." / "x1.tif"], conditions)
    with pytest.raises(ParameterError, match="would both be sample 'x1'"):
        samples_from_videos([tmp_path / "x1.tif", tmp_path / "y" / "x1.tif"], conditions)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--manifest", "{tmp}/absent.csv"], "cannot read it"),
        (["--manifest", "{tmp}/nocol.csv"], "missing column video"),
        (["--manifest", "{tmp}/dup.csv"], "duplicate entry"),
        (["{tmp}/v.tif", "{tmp}/v.tif"], "duplicate entry"),
        (["{tmp}/v.tif", "--manifest", "{tmp}/dup.csv"], "not both"),
        (["{tmp}/v.tif", "--workers", "0"], "--workers must be >= 1"),
        (["{tmp}/v.tif", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "own workers"),
        ([], "no video given"),
    ],
)
def test_command_line_faults_one_line_exit_2(exo, tmp_path, args, message):
    _write(tmp_path / "nocol.csv", "sample,movie\nA,a.tif\n")
    _write(tmp_path / "dup.csv", "sample,video\nA,v.tif\nA,v.tif\n")
    out = tmp_path / "out"
    argv = [a.format(tmp=tmp_path) for a in args]
    outcome = exo("batch", *argv, "--out", out, "--db", tmp_path / "jobs.db", "--create")
    one_error_line(outcome, message)
    assert not out.exists()
    assert not (tmp_path / "jobs.db").exists()
