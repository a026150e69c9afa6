"""The notice that detection kernels are being compiled appears when numba compiles, only then."""

from __future__ import annotations

import numba
import numpy as np

from exocheck.nta import _kernels

NOTICE = "compiling exocheck's detection kernels"


def _analyze(exo, beads, out):
    return exo(
        "analyze", beads / "video.tif", "--pixel-size-um", 0.166,
        "--fps", 30, "--exposure-ms", 15, "--bootstrap", 4, "--out", out,
    )  # fmt: skip


def test_notice_only_when_compiling(exo, monkeypatch, beads, tmp_path):
    _kernels.warm_up()  # loaded in this process: nothing left to compile
    outcome = _analyze(exo, beads, tmp_path / "loaded")
    assert outcome.code == 0, outcome.stderr
    assert NOTICE not in outcome.stdout + outcome.stderr

    real = _kernels.warm_up

    def compiling(on_compile=None, **kwargs):
        on_compile()  # what numba's compile event triggers
        return real(**kwargs)

    monkeypatch.setattr(_kernels, "warm_up", compiling)
    outcome = _analyze(exo, beads, tmp_path / "compiled")
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.count(NOTICE) == 1


def test_warm_up_reports_compiling_and_not_loading():
    calls = []
    _kernels.warm_up()
    assert _kernels.warm_up(on_compile=lambda: calls.append(1)) is False
    assert calls == []

    @numba.njit
    def fresh(a):
        return a.sum() + 1

    notice = _kernels._CompileNotice(lambda: calls.append(1))
    with numba.core.event.install_listener("numba:compile", notice):
        fresh(np.arange(3))
        fresh(np.arange(4))  # compiled already: no second call
    assert notice.compiled and calls == [1]
