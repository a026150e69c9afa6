"""Helpers of the method, instrument and calibration tests (imported by name: method_helpers)."""

from __future__ import annotations

import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from exocheck.cli.main import run

SERIAL = "NS-0042"
MODEL = "NanoSight NS300"
METHOD = "nta-ev-scatter"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

METHOD_YAML = f"""\
schema: exocheck.method/1
name: {METHOD}
version: 1
title: EV size and concentration by scatter NTA
instrument_model: {MODEL}
acquisition:
  fps: 30
  exposure_ms: 15
  pixel_size_um: 0.166
  temperature_c: 25
  camera: {{camera_level: 14}}
detection: {{threshold_sigma: 5, min_track_frames: 10}}
sizing: {{bootstrap: 3}}
calibration: {{required: true, interval_days: 30, tolerance_percent: 5, max_span: 0.45}}
reportable_range_nm: [50, 1000]
product_refractive_index: 1.39
"""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(capsys, monkeypatch, *args, stdin: str | None = None) -> Outcome:
    """Run ``exocheck ARGS`` in this process (the console script's entry point)."""
    monkeypatch.setattr(sys, "argv", ["exocheck", *map(str, args)])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    try:
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Outcome(code, _ANSI.sub("", out), _ANSI.sub("", err))


def one_line_error(outcome: Outcome, *words: str) -> None:
    """Exit 2 with a single ``error:`` line on stderr (progress lines aside) holding ``words``."""
    from exocheck.cli._common import PlainProgress

    assert outcome.code == 2, (outcome.stdout, outcome.stderr)
    lines = [
        x
        for x in outcome.stderr.splitlines()
        if x.strip() and not PlainProgress.LINE.match(x) and not x.startswith("database: ")
    ]
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    assert "Traceback" not in outcome.stderr
    for word in words:
        assert word in outcome.stderr, outcome.stderr


def stored_calibration_args(beads: Path, db: Path) -> list:
    """``exocheck calibrate`` of the bead fixture, stored as NS-0042's under the method."""
    return [
        "calibrate", beads, "--known-concentration-per-ml", 1e9, "--bead-diameter-nm", 100,
        "--standard-lot", "PS100-2291", "--standard-expiry", "2099-12-31",
        "--instrument", SERIAL, "--method", METHOD, "--db", db, "--by", "ana",
    ]  # fmt: skip
