"""``exocheck import DIR --recursive``: a lab's export tree, grouped per measurement, into a lot."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from typer.testing import CliRunner

from exocheck.cli.main import app
from exocheck.instruments.tree import collect, pack

from .builders import (
    NanoSightOptions,
    ZetaViewOptions,
    fcs_file,
    nano_companion,
    nanosight_particles,
    nanosight_summary,
    simulated_tracks,
    viewsizer_folder,
    zetaview_positions,
    zetaview_size,
)


@pytest.fixture
def export_tree(tmp_path):
    root = tmp_path / "exports"
    ns = root / "2021" / "nanosight"
    ns.mkdir(parents=True)
    export = nanosight_summary(opts=NanoSightOptions(nbins=300))
    (ns / "EV-lot-17-ExperimentSummary.csv").write_bytes(export.csv)
    (ns / "EV-lot-17.nano").write_bytes(nano_companion(export))
    (ns / "EV-lot-17_001-ParticleData.csv").write_bytes(nanosight_particles(simulated_tracks(n=50)))
    (ns / "EV-lot-17_001.avi").write_bytes(b"RIFF....AVI ")  # a capture: not tried
    zv = root / "2021" / "zetaview"
    zv.mkdir()
    (zv / "20210401_0003_EV_lot_17_size_488.txt").write_bytes(zetaview_size().txt)
    (zv / "20210401_0003_EV_lot_17_11pos.txt").write_bytes(zetaview_positions()[0])
    (zv / "20210402_0001_EV_lot_18_size_488.txt").write_bytes(
        zetaview_size(opts=ZetaViewOptions(decimal_comma=True, sample="EV lot 18")).txt
    )
    viewsizer_folder(root / "viewsizer", results_name="Results", extra_xml=True)
    fcs_file(root / "C.fcs")
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("remember to order PBS\n")
    (junk / "broken-ExperimentSummary.csv").write_bytes(export.csv[:2000])
    (junk / "Thumbs.db").write_bytes(b"\x00" * 10)
    (junk / "report.pdf").write_bytes(b"%PDF-1.4\n")
    return root


def test_collect_groups_the_files_of_a_measurement(export_tree):
    tree = collect(export_tree)
    found = {p.relative_to(export_tree).as_posix(): [g.name for g in grouped]
             for p, grouped in tree.measurements}  # fmt: skip
    assert found == {
        "C.fcs": [],
        "2021/nanosight/EV-lot-17-ExperimentSummary.csv": [
            "EV-lot-17.nano", "EV-lot-17_001-ParticleData.csv"
        ],
        "2021/zetaview/20210401_0003_EV_lot_17_size_488.txt": ["20210401_0003_EV_lot_17_11pos.txt"],
        "2021/zetaview/20210402_0001_EV_lot_18_size_488.txt": [],
        "junk/broken-ExperimentSummary.csv": [],
        "junk/notes.txt": [],
        "viewsizer/EV_lot_17": [],
    }  # fmt: skip
    assert tree.not_tried == {".avi": 1, ".pdf": 1}


def test_recursive_import_reports_every_file_and_never_stops(export_tree):
    result = CliRunner().invoke(app, ["import", str(export_tree), "--recursive", "--json"])
    assert result.exit_code == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["source"]["instrument"] for r in records) == [
        "CytoFLEX nano", "NanoSight NTA", "ViewSizer 3000", "ZetaView", "ZetaView"
    ]  # fmt: skip
    zetaview = [r for r in records if r["source"]["instrument"] == "ZetaView"]
    assert sorted(len(r["per_video"]) for r in zetaview) == [0, 11]  # the _11pos went with it
    nanosight = next(r for r in records if r["source"]["instrument"] == "NanoSight NTA")
    assert nanosight["source"]["files"] == [
        "EV-lot-17-ExperimentSummary.csv", "EV-lot-17.nano"
    ]  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "notes.txt" in errors[0] + errors[1] and "broken-ExperimentSummary.csv" in "".join(
        errors
    )
    assert "not tried (2 files that are not instrument exports): 1 .avi, 1 .pdf" in result.stderr
    assert "Traceback" not in result.stderr


def test_recursive_import_table_rows(export_tree):
    result = CliRunner().invoke(app, ["import", str(export_tree), "-r"])
    text = " ".join(result.stdout.split())
    assert "Imported measurements" in text
    assert result.stdout.count("│ 2021/ze") == 2  # one row per ZetaView measurement
    # one line per ZetaView size file about its removed positions, not one per position
    removed = [line for line in result.stderr.splitlines() if "positions removed" in line]
    assert len(removed) == 1


def test_folder_original_is_a_deterministic_zip(export_tree):
    folder = export_tree / "viewsizer" / "EV_lot_17"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    first, second = pack(folder, files), pack(folder, list(reversed(files)))
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == sorted(p.relative_to(folder).as_posix() for p in files)


def test_measurement_add_accepts_folders_and_import_fills_a_lot(export_tree, tmp_path):
    from exocheck.store import Store

    url = f"sqlite:///{tmp_path / 'qc.db'}"
    with Store.open(url) as store:
        store.add_product("EXO-1", particles_per_unit=1e11, fill_volume_ml=1.0, by="ana")
        store.add_lot("L1", "EXO-1", by="ana")
        store.add_lot("L2", "EXO-1", by="ana")
    folder = export_tree / "viewsizer" / "EV_lot_17"
    runner = CliRunner()
    for target in (folder, folder / "Results"):
        result = runner.invoke(
            app, ["measurement", "add", "L1", str(target), "--db", url, "--by", "ana"]
        )
        assert result.exit_code == 0, result.output
        assert "measurement from" in result.stdout
    result = runner.invoke(
        app, ["import", str(export_tree / "2021"), "-r", "--lot", "L2", "--db", url, "--by", "ana"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.count("lot L2: measurement from") == 3
    with Store.open(url) as store:
        one, two = store.lot_info("L1"), store.lot_info("L2")
    assert [a["filename"] for a in one["attachments"]] == ["EV_lot_17.zip", "EV_lot_17.zip"]
    assert one["attachments"][0]["sha256"] == one["attachments"][1]["sha256"]
    assert sorted(a["filename"] for a in two["attachments"]) == [
        "20210401_0003_EV_lot_17_size_488.txt",
        "20210402_0001_EV_lot_18_size_488.txt",
        "EV-lot-17-ExperimentSummary.csv",
    ]


def test_recursive_import_pairs_renamed_summaries_by_time_and_exits_0(tmp_path):
    """Five renamed summaries, each beside the ``.nano`` that shares its capture time: every
    export is read, no ``.nano`` is tried on its own, and the import exits 0."""
    root = tmp_path / "EMT1"
    root.mkdir()
    export = nanosight_summary(opts=NanoSightOptions(nbins=200))
    expected = {}
    for k in range(5):
        when = f"2021-04-01 15-4{k}-48"
        summary = f"EMT1 d200 pre{k + 1} {when}-ExperimentSummary.csv"
        (root / summary).write_bytes(export.csv)
        (root / f"EMT1 d200 {when}.nano").write_bytes(nano_companion(export))
        expected[summary] = [f"EMT1 d200 {when}.nano"]
    tree = collect(root)
    assert {p.name: [g.name for g in grouped] for p, grouped in tree.measurements} == expected
    result = CliRunner().invoke(app, ["import", str(root), "--recursive", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["source"]["files"][1] for r in records) == sorted(
        files[0] for files in expected.values()
    )
    assert "error" not in result.stderr
