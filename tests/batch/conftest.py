"""Small simulated videos for the batch tests, made once per session.

Videos are 256×192 and 100 frames of 100 nm beads (dense, for enough tracks): an analysis takes
well under a second, so a batch of several stays quick on two cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from batch_support import ANSI, Outcome

from exocheck.cli.main import run
from exocheck.simulate import make_params, make_population, simulate


def _video(root: Path, name: str, seed: int) -> Path:
    population = make_population(name="beads", diameter_nm=100.0, cv=0.03, concentration_per_ml=3e9)
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
    """Four bead videos ``s1.tif`` … ``s4.tif`` (different seeds) in one folder."""
    root = tmp_path_factory.mktemp("batch-videos")
    return [_video(root, f"s{i}", seed=100 + i) for i in range(1, 5)]


@pytest.fixture(scope="session")
def corrupt(tmp_path_factory, videos) -> Path:
    """A video cut in half (a transfer that stopped)."""
    path = tmp_path_factory.mktemp("batch-corrupt") / "cut.tif"
    data = videos[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


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
        return Outcome(code, ANSI.sub("", out), ANSI.sub("", err))

    return call
