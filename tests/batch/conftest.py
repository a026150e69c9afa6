"""Small simulated videos and helpers for the batch tests, made once per session.

Videos are 256×192 and 100 frames of 100 nm beads (dense, for enough tracks): an analysis takes
well under a second, so a batch of several stays quick on two cores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from exocheck.cli.main import run
from exocheck.simulate import make_params, make_population, simulate

BIN = Path(sys.executable).parent
EXOCHECK = BIN / "exocheck"
DASK = BIN / "dask"
SETTINGS = ["--pixel-size-um", "0.166", "--fps", "30", "--exposure-ms", "15", "--bootstrap", "4"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def exocheck(*args, timeout: float = 240) -> Outcome:
    """Run the installed ``exocheck`` command as a child process."""
    done = subprocess.run(
        [str(EXOCHECK), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    return Outcome(done.returncode, _ANSI.sub("", done.stdout), _ANSI.sub("", done.stderr))


def _video(root: Path, name: str, seed: int) -> Path:
    population = make_population(name="beads", diameter_nm=100.0, cv=0.03, concentration_per_ml=2e9)
    params = make_params(
        populations=[population], frames=100, width_px=256, height_px=192, fps=30.0,
        exposure_ms=15.0, pixel_size_um=0.166, temperature_c=25.0, seed=seed,
    )  # fmt: skip
    folder = root / f"sim-{name}"
    simulate(params, folder)
    target = root / f"{name}.tif"
    (folder / "video.tif").rename(target)
    return target


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> list[Path]:
    """Six bead videos ``s1.tif`` … ``s6.tif`` (different seeds) in one folder."""
    root = tmp_path_factory.mktemp("batch-videos")
    return [_video(root, f"s{i}", seed=100 + i) for i in range(1, 7)]


@pytest.fixture(scope="session")
def corrupt(tmp_path_factory, videos) -> Path:
    """A video cut in half (a transfer that stopped)."""
    path = tmp_path_factory.mktemp("batch-corrupt") / "cut.tif"
    data = videos[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def comparable(result_json: Path) -> dict:
    """A result.json without its creation time (the only thing two runs may differ in)."""
    data = json.loads(result_json.read_text())
    data["provenance"].pop("created", None)
    return data


@pytest.fixture
def exo(capsys, monkeypatch):
    """``exo(*args)`` runs ``exocheck ARGS`` in this process: (exit code, stdout, stderr)."""

    def call(*args) -> Outcome:
        monkeypatch.setattr(sys, "argv", ["exocheck", *map(str, args)])
        capsys.readouterr()
        try:
            run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Outcome(code, _ANSI.sub("", out), _ANSI.sub("", err))

    return call


def one_error_line(outcome: Outcome, message: str) -> str:
    """Exit 2 and exactly one ``error:`` line on stderr naming ``message``; no traceback."""
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome.stderr
    assert outcome.code == 2, (outcome.code, outcome.stdout, outcome.stderr)
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert message.lower() in lines[0].lower(), lines[0]
    return lines[0]
