"""Mistyped command lines get one error line and exit 2, like every other user mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXOCHECK = Path(sys.executable).parent / "exocheck"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["analyze", "--fps", "abc", "x.tif", "--out", "o"], "--fps"),
        (["analyze"], "videos"),
        (["no-such-command"], "no-such-command"),
        (["simulate", "--out", "o", "--frames", "1"], "--frames"),
        (["release"], "LOT"),
    ],
)
def test_usage_error_is_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    done = subprocess.run([str(EXOCHECK), *args], cwd=tmp_path, capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert fragment.lower() in lines[0].lower()
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
