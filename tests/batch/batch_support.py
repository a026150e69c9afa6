"""Helpers of the batch tests: running the command, comparing results, checking one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
EXOCHECK = BIN / "exocheck"
DASK = BIN / "dask"
SETTINGS = ["--pixel-size-um", "0.166", "--fps", "30", "--exposure-ms", "15", "--bootstrap", "4"]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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
    return Outcome(done.returncode, ANSI.sub("", done.stdout), ANSI.sub("", done.stderr))


def comparable(result_json: Path) -> dict:
    """A result.json without its creation time (the only thing two runs may differ in)."""
    data = json.loads(result_json.read_text())
    data["provenance"].pop("created", None)
    return data


def one_error_line(outcome: Outcome, message: str) -> str:
    """Exit 2 and exactly one ``error:`` line on stderr naming ``message``; no traceback."""
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome.stderr
    assert outcome.code == 2, (outcome.code, outcome.stdout, outcome.stderr)
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert message.lower() in lines[0].lower(), lines[0]
    return lines[0]
