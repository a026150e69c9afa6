"""Mangled exports (truncated, shuffled, re-encoded, random bytes) never crash an importer.

Every outcome must be a Measurement or a FormatError that names the file. The importers' own
catch-all for damaged input is switched off here, so the parsers themselves must cope.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exocheck.errors import ExocheckError, FormatError
from exocheck.instruments import detect, read_measurement
from exocheck.records import Measurement

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
    zetaview_track_fcs,
)

_BASE = Path(tempfile.mkdtemp(prefix="exocheck-fuzz-"))


@functools.cache
def _originals() -> dict[str, bytes]:
    ns = nanosight_summary(
        opts=NanoSightOptions(n_videos=2, nbins=40, failed=(1,), filter_row=("Filter", "500 nm"))
    )
    fcs_file(_BASE / "base.fcs", n_events=50)
    zetaview_track_fcs(
        _BASE / "tracks.fcs",
        simulated_tracks(n=30),
        keywords={"Filter Wavelength nm": "500", "Camera": "FpSec 15 #Cycles 3 FRate 15.0"},
    )
    return {
        "particles": nanosight_particles(simulated_tracks(n=20), per_point=True, excluded=2),
        "track-fcs": (_BASE / "tracks.fcs").read_bytes(),
        "nanosight": ns.csv,
        "nano": nano_companion(ns),
        "zetaview": zetaview_size(
            opts=ZetaViewOptions(decimal_comma=True, filter_wavelength="500,000000")
        ).txt,
        "positions": zetaview_positions()[0],
        "fcs": (_BASE / "base.fcs").read_bytes(),
    }


@functools.cache
def _viewsizer() -> Path:
    return viewsizer_folder(_BASE / "vs", n_videos=3, particles=200).folder


def _mangle(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["truncate", "shuffle", "encode", "bytes", "drop", "combo"]))
    if how in ("truncate", "combo"):
        data = data[: draw(st.integers(0, len(data)))]
    if how in ("shuffle", "combo"):
        lines = data.split(b"\n")
        data = b"\n".join(draw(st.permutations(lines)) if len(lines) < 60 else _swap(lines, draw))
    if how == "encode":
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-8-sig", "cp1252", "utf-32"]))
        data = data.decode("latin-1").encode(codec, errors="replace")
    if how in ("bytes", "combo"):
        for _ in range(draw(st.integers(1, 20))):
            pos = draw(st.integers(0, max(len(data) - 1, 0)))
            data = data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos + 1 :]
    if how == "drop":
        lines = data.split(b"\n")
        keep = draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
        data = b"\n".join(line for line, k in zip(lines, keep, strict=True) if k)
    return data


def _swap(lines: list[bytes], draw) -> list[bytes]:
    lines = list(lines)
    for _ in range(draw(st.integers(1, 30))):
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def _check(path: Path, target: Path | None = None, resize: bool = False) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detect, "_DAMAGE", ())  # no safety net: parsers must cope themselves
        try:
            m = read_measurement(target or path, resize=resize)
        except FormatError as exc:
            named = [path.name, target.name if target else path.name, "ParticleData.csv"]
            assert any(n in str(exc) for n in named), str(exc)
            assert "\n" not in str(exc)
            return
        except ExocheckError as exc:  # pragma: no cover - would be a wrong error class
            raise AssertionError(f"unexpected error class {type(exc).__name__}: {exc}") from exc
    assert isinstance(m, Measurement)
    Measurement.from_json(m.to_json())  # a result always serialises and validates


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow  # 60 randomly mangled exports: minutes
@FUZZ
@given(
    kind=st.sampled_from(["nanosight", "zetaview", "positions", "fcs", "particles", "track-fcs"]),
    data=st.data(),
)
def test_mangled_files(kind, data):
    mangled = _mangle(_originals()[kind], data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        name = {"nanosight": "x-ExperimentSummary.csv", "zetaview": "x_size_488.txt",
                "positions": "x_11pos.txt", "fcs": "x.fcs", "particles": "x-AllTracks.csv",
                "track-fcs": "x_tracks.fcs"}[kind]  # fmt: skip
        path = Path(tmp) / name
        path.write_bytes(mangled)
        if kind == "nanosight" and data.draw(st.booleans()):
            (Path(tmp) / "x.nano").write_bytes(_mangle(_originals()["nano"], data.draw))
        if kind == "nanosight" and data.draw(st.booleans()):  # per-particle data beside it
            particles = _mangle(_originals()["particles"], data.draw)
            (Path(tmp) / "x_001-ParticleData.csv").write_bytes(particles)
        _check(path, resize=kind in ("nanosight", "particles", "track-fcs"))


@FUZZ
@given(which=st.sampled_from(["xml", "PSD_constant_1nm", "Videos"]), data=st.data())
def test_mangled_viewsizer_folder(which, data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "EV_lot_17"
        shutil.copytree(_viewsizer(), folder)
        victim = next(p for p in folder.rglob("*") if (p.is_file() and p.name.startswith(which))
                      or (which == "xml" and p.suffix == ".xml"))  # fmt: skip
        victim.write_bytes(_mangle(victim.read_bytes(), data.draw))
        _check(victim, folder)


@settings(max_examples=40, deadline=None)
@given(blob=st.binary(max_size=2000))
def test_random_bytes(blob):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.dat"
        path.write_bytes(blob)
        _check(path)
