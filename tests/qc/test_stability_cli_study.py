"""Study import, the shelf-life plot and the ``exocheck shelf-life`` command contract."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from exocheck.cli.main import app
from exocheck.errors import StabilityError
from exocheck.qc.stability import estimate_shelf_life
from exocheck.qc.stability_plot import plot_shelf_life, save_figure
from exocheck.qc.study import StudyCondition, read_study_csv

DATA = Path(__file__).parent / "data"
STUDY = """lot,time,temperature_c,container,buffer,concentration_per_ml
L1,0,4,polypropylene,PBS,2.0e10
L1,24,4,polypropylene,PBS,1.5e10
L1,48,4,polypropylene,PBS,1.0e10
L1,0,-80,polypropylene,PBS,2.0e10
L1,48,-80,polypropylene,PBS,1.9e10
L2,0,4,low-binding,PBS,2.1e10
"""


def test_read_study_csv(tmp_path):
    path = tmp_path / "study.csv"
    path.write_text(STUDY)
    study = read_study_csv(path, response_col="concentration_per_ml", time_unit="hour")
    assert study.name == "study" and study.time_unit == "hour"
    assert [c.label for c in study.conditions] == [
        "4 °C, polypropylene, PBS",
        "-80 °C, polypropylene, PBS",
        "4 °C, low-binding, PBS",
    ]
    cold = study.frame(StudyCondition(temperature_c=-80, container="polypropylene", buffer="PBS"))
    assert cold["value"].tolist() == [2.0e10, 1.9e10]
    assert len(study.frame()) == 6 and set(study.frame()["lot"]) == {"L1", "L2"}
    # the record round-trips through JSON (what the store will persist)
    assert type(study).model_validate_json(study.model_dump_json()) == study


def test_read_study_csv_errors(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(STUDY.replace("1.5e10", "lost"))
    with pytest.raises(StabilityError, match="line 3: column concentration_per_ml"):
        read_study_csv(path, response_col="concentration_per_ml")
    with pytest.raises(StabilityError, match="missing column"):
        read_study_csv(path, response_col="count")


def test_plot_marks_limit_and_shelf_life(tmp_path):
    data = pd.read_csv(DATA / "exp1.csv")
    data = data[data["Batch"].isin(["b4", "b5", "b8"])]
    kw = dict(time_col="Month", response_col="Potency", batch_col="Batch")
    result = estimate_shelf_life(data, lower_limit=95, **kw)
    fig = plot_shelf_life(result, data, **kw)
    ax = fig.axes[0]
    horizontal = [ln for ln in ax.lines if list(ln.get_ydata()) == [95, 95]]
    vertical = [ln for ln in ax.lines if list(ln.get_xdata()) == [result.shelf_life] * 2]
    assert horizontal and vertical
    path = tmp_path / "plot.png"
    save_figure(fig, path)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 300


def test_cli_json_contract(tmp_path):
    plot = tmp_path / "p.png"
    res = CliRunner().invoke(
        app,
        [
            "shelf-life", str(DATA / "exp1.csv"), "--time-col", "Month", "--response-col",
            "Potency", "--batch-col", "Batch", "--lower-limit", "95", "--where", "Batch=b4",
            "--json", "--plot", str(plot), "--storage", "refrigerated",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {
        "model",
        "shelf_life",
        "by_side",
        "worst_batch",
        "supported_shelf_life",
        "warnings",
    } <= (out.keys())
    assert out["model"] == "cics" and out["worst_batch"] == "b4"
    assert out["by_side"]["upper"] is None and out["by_side"]["lower"] == out["shelf_life"]
    assert out["shelf_life"] > 30 and out["supported_shelf_life"] == 30  # min(1.5 X, X + 6)
    assert plot.stat().st_size > 1000


def test_cli_conformance_case_and_label_claim(tmp_path):
    args = ["shelf-life", str(DATA / "exp2.csv"), "--time-col", "Month"]
    args += ["--response-col", "Related", "--batch-col", "Batch", "--upper-limit", "0.3", "--json"]
    out = json.loads(CliRunner().invoke(app, args).output)
    assert out["model"] == "dids" and out["worst_batch"] == "b8"
    assert out["shelf_life"] == pytest.approx(15.844877978, rel=1e-9)
    counts = tmp_path / "counts.csv"
    counts.write_text("h,n\n0,100\n12,90\n24,81\n36,73\n48,66\n")
    args = ["shelf-life", str(counts), "--time-col", "h", "--response-col", "n", "--lower-limit"]
    args += ["50", "--transform", "log", "--time-unit", "hour", "--label-claim", "1e9", "--json"]
    res = CliRunner().invoke(app, args)
    out = json.loads(res.output)
    expiry = out["particles_at_expiry"]
    assert expiry["expiry"] == out["supported_shelf_life"]
    assert expiry["lower_bound_per_unit"] < expiry["predicted_per_unit"] < 1e9


def test_cli_user_error_exits_2_with_one_line(tmp_path):
    args = ["shelf-life", str(DATA / "exp1.csv"), "--time-col", "Month", "--response-col", "Potncy"]
    args += ["--batch-col", "Batch", "--lower-limit", "95"]
    proc = subprocess.run(
        [sys.executable, "-m", "exocheck.cli.main", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "missing column(s) Potncy" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2


def test_cli_accelerated_and_freeze_thaw(tmp_path):
    rows = ["temperature_c,hour,count"]
    for temp, k in ((25, 0.002), (40, 0.01), (55, 0.04)):
        rows += [f"{temp},{t},{1e10 * math.exp(-k * t) * (1.02 if i else 0.98)}"
                 for t in (0, 10, 20, 40) for i in (0, 1)]  # fmt: skip
    path = tmp_path / "acc.csv"
    path.write_text("\n".join(rows))
    args = ["accelerated", str(path), "--time-col", "hour", "--count-col", "count"]
    res = CliRunner().invoke(app, [*args, "--storage-temp", "4", "--fraction", "0.5", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert 0 < out["prediction"]["k"] < 0.002  # slower at 4 °C than at 25 °C
    assert out["time_to_fraction_lower"] < out["time_to_fraction"]
    ft = tmp_path / "ft.csv"
    ft.write_text("cycle,count\n" + "\n".join(f"{c},{1e10 * 0.9**c * (1 + 0.01 * (-1) ** c)}"
                                                  for c in range(5)))  # fmt: skip
    res = CliRunner().invoke(app, ["freeze-thaw", str(ft), "--count-col", "count", "--json"])
    assert json.loads(res.output)["loss_per_cycle"] == pytest.approx(0.1, abs=0.01)
