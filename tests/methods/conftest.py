"""Fixtures of the method, instrument and calibration tests: small simulated captures (a bead
standard and an EV sample, 320×240, 150 frames: about a second each to analyse), a method
document, and stores stocked with an instrument and an approved method."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from method_helpers import METHOD, METHOD_YAML, MODEL, SERIAL, invoke

from exocheck.simulate import make_params, make_population, simulate


@pytest.fixture
def exo(capsys, monkeypatch):
    """``exo(*args, stdin=None)`` runs ``exocheck ARGS`` and returns its :class:`Outcome`."""
    return lambda *args, stdin=None: invoke(capsys, monkeypatch, *args, stdin=stdin)


def _capture(out: Path, seed: int, **population) -> Path:
    population.setdefault("concentration_per_ml", 1e9)
    params = make_params(
        populations=[make_population(**population)],
        frames=150,
        width_px=320,
        height_px=240,
        fps=30.0,
        exposure_ms=15.0,
        pixel_size_um=0.166,
        temperature_c=25.0,
        seed=seed,
    )
    simulate(params, out)
    return out / "video.tif"


@pytest.fixture(scope="session")
def beads(tmp_path_factory) -> Path:
    """A 100 nm polystyrene bead standard (CV 3 %) at 1e9/mL: its D50 measures 99 nm."""
    return _capture(tmp_path_factory.mktemp("beads"), 11, name="beads", diameter_nm=100.0, cv=0.03)


@pytest.fixture(scope="session")
def ev(tmp_path_factory) -> Path:
    """An EV sample: log-normal sizes (median 110 nm, geometric SD 1.5), index 1.39."""
    return _capture(
        tmp_path_factory.mktemp("ev"),
        5,
        name="ev",
        distribution="lognormal",
        diameter_nm=110.0,
        gsd=1.5,
        refractive_index=1.39,
        concentration_per_ml=3e9,
    )


@pytest.fixture
def method_file(tmp_path) -> Path:
    path = tmp_path / "method.yaml"
    path.write_text(METHOD_YAML)
    return path


@pytest.fixture
def lab(exo, tmp_path, method_file) -> Path:
    """A store without users holding instrument NS-0042 and method nta-ev-scatter@1, written by
    ana and approved by quinn."""
    db = tmp_path / "qc.db"
    assert exo("db", "init", "--db", db).code == 0
    added = exo("instrument", "add", SERIAL, "--model", MODEL, "--pixel-size-um", 0.166,
                "--laser-wavelength-nm", 488, "--qualification-due", "2099-01-01",
                "--db", db, "--by", "quinn")  # fmt: skip
    assert added.code == 0, added.stderr
    assert exo("method", "add", method_file, "--db", db, "--by", "ana").code == 0
    approved = exo("method", "approve", f"{METHOD}@1", "--db", db, "--by", "quinn")
    assert approved.code == 0, approved.stderr
    return db
