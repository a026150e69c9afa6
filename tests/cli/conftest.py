"""Small videos and damaged inputs for the command-line tests, made once per session.

Videos are 320×240 and 150 frames (5 s at 30 fps) of 100 nm polystyrene beads: enough tracks for
a size distribution in about a second of analysis, small enough to keep the whole file fast.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from exocheck.cli.main import run
from exocheck.io.video import write_tiff
from exocheck.simulate import make_params, make_population, simulate

EXOCHECK = Path(sys.executable).with_name("exocheck")
WIDTH, HEIGHT, FRAMES = 320, 240, 150
BEAD_NM = 100.0
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Outcome:
    """Exit status and captured streams of one ``exocheck`` invocation."""

    code: int
    stdout: str
    stderr: str


def invoke(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args) -> Outcome:
    """Run ``exocheck ARGS`` in this process through the console-script entry point ``run``."""
    monkeypatch.setattr(sys, "argv", ["exocheck", *map(str, args)])
    capsys.readouterr()
    try:
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Outcome(code, _ANSI.sub("", out), _ANSI.sub("", err))


def invoke_process(*args, cwd: Path | None = None) -> Outcome:
    """Run the installed ``exocheck`` command in a child process."""
    done = subprocess.run(
        [str(EXOCHECK), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    return Outcome(done.returncode, _ANSI.sub("", done.stdout), _ANSI.sub("", done.stderr))


def _beads(out: Path, seed: int, concentration_per_ml: float = 1e9) -> Path:
    population = make_population(
        name="beads", diameter_nm=BEAD_NM, cv=0.03, concentration_per_ml=concentration_per_ml
    )
    params = make_params(
        populations=[population],
        frames=FRAMES,
        width_px=WIDTH,
        height_px=HEIGHT,
        fps=30.0,
        exposure_ms=15.0,
        pixel_size_um=0.166,
        temperature_c=25.0,
        seed=seed,
    )
    simulate(params, out)
    return out


@pytest.fixture(scope="session")
def beads(tmp_path_factory) -> Path:
    """Folder with ``video.tif`` and ``truth.json`` of a 100 nm bead suspension."""
    return _beads(tmp_path_factory.mktemp("beads"), seed=11)


@pytest.fixture(scope="session")
def beads_replicate(tmp_path_factory) -> Path:
    """A second capture of the same suspension (another seed), also named ``video.tif``."""
    return _beads(tmp_path_factory.mktemp("beads-replicate"), seed=12)


@pytest.fixture(scope="session")
def analysis(tmp_path_factory, beads) -> tuple[Path, Outcome]:
    """``exocheck analyze`` on the bead video, run once as a child process."""
    out = tmp_path_factory.mktemp("analysis") / "result"
    outcome = invoke_process(
        "analyze", beads / "video.tif", "--pixel-size-um", 0.166, "--fps", 30,
        "--temperature-c", 25, "--exposure-ms", 15, "--bootstrap", 8, "--out", out,
    )  # fmt: skip
    return out, outcome


def _container(path: Path, codec: str, pix_fmt: str, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


def _cut(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.fixture(scope="session")
def bad(tmp_path_factory, beads) -> dict[str, Path]:
    """Damaged, empty and particle-free inputs, and malformed settings files."""
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    files: dict[str, Path] = {"missing": root / "no-such-video.tif"}
    files["empty"] = root / "empty.tif"
    files["empty"].write_bytes(b"")
    files["text"] = root / "notes.tif"
    files["text"].write_text("these are notes, not a video\n")
    files["truncated"] = _cut(beads / "video.tif", root / "truncated.tif")
    noise = rng.normal(20.0, 4.0, (60, HEIGHT, WIDTH)).clip(0, 255).astype(np.uint8)
    _container(root / "full.avi", "rawvideo", "gray", noise)
    files["cut_avi"] = _cut(root / "full.avi", root / "cut.avi")
    _container(root / "full.mp4", "libx264", "yuv420p", noise)
    files["cut_mp4"] = _cut(root / "full.mp4", root / "cut.mp4")
    files["blank"] = root / "blank.tif"
    write_tiff(
        files["blank"], np.full((60, HEIGHT, WIDTH), 20, np.uint8), fps=30, pixel_size_um=0.166
    )
    files["noise"] = root / "noise.tif"
    write_tiff(files["noise"], noise, fps=30, pixel_size_um=0.166)
    # settings files
    files["yaml_syntax"] = root / "syntax.yaml"
    files["yaml_syntax"].write_text(
        "frames: 20\npopulations:\n  - diameter_nm: 100\n   cv: [0.03\n"
    )
    files["yaml_value"] = root / "value.yaml"
    files["yaml_value"].write_text("frames: 20\npopulations:\n  - diameter_nm: -100\n")
    files["yaml_unknown"] = root / "unknown.yaml"
    files["yaml_unknown"].write_text("frames: 20\nframe_rate: 30\n")
    files["yaml_list"] = root / "list.yaml"
    files["yaml_list"].write_text("- 100\n- 200\n")
    files["cal_text"] = root / "cal-text.json"
    files["cal_text"].write_text("depth 3.5 um\n")
    files["cal_schema"] = root / "cal-schema.json"
    files["cal_schema"].write_text(json.dumps({"schema": "exocheck.nta/1", "depth_um": 3.0}))
    good = {
        "schema": "exocheck.calibration/1",
        "depth_um": 3.0,
        "bead_brightness_ratio": 8.0,
        "bead_diameter_nm": 100.0,
        "known_concentration_per_ml": 5e8,
        "pixel_size_um": 0.166,
        "fps": 30.0,
        "temperature_c": 25.0,
    }
    files["cal_missing"] = root / "cal-missing.json"
    files["cal_missing"].write_text(json.dumps({k: v for k, v in good.items() if k != "fps"}))
    files["cal_string"] = root / "cal-string.json"
    files["cal_string"].write_text(json.dumps({**good, "depth_um": "3.0 um"}))
    files["cal_nan"] = root / "cal-nan.json"
    files["cal_nan"].write_text(json.dumps({**good, "depth_um": float("nan")}))
    files["a_file"] = root / "a-file"
    files["a_file"].write_text("I am a file, not a folder\n")
    return files


@pytest.fixture
def exo(capsys, monkeypatch):
    """``exo(*args)`` runs ``exocheck ARGS`` in this process and returns its :class:`Outcome`."""
    return lambda *args: invoke(capsys, monkeypatch, *args)


@pytest.fixture
def exo_process():
    """``exo_process(*args)`` runs the installed ``exocheck`` command in a child process."""
    return invoke_process


@pytest.fixture
def old_result(tmp_path):
    """An output folder holding an earlier run's files; returns (folder, snapshot function)."""
    folder = tmp_path / "earlier"
    folder.mkdir()
    for name in ("result.json", "tracks.parquet", "size_distribution.png", "cal.json",
                 "video.tif", "truth.json"):  # fmt: skip
        (folder / name).write_bytes(f"earlier {name}".encode())

    def snapshot() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}

    return folder, snapshot
