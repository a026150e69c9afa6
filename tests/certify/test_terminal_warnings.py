"""What a user's terminal shows after ``exocheck verify`` run as a program: the verdict, or one
line naming the failure, and no third-party warning (pyHanko's import raises cryptography's
``CryptographyDeprecationWarning`` about DSA, two more lines on stderr)."""

from __future__ import annotations

import subprocess
import sys
import warnings

from exocheck.cli._quiet import THIRD_PARTY_WARNINGS, quiet_third_party_warnings


def _exocheck(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exocheck.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_verify_prints_its_verdict_and_no_warning(issued):
    folder, _store, keyring, _certificate = issued
    public = keyring.export_public(folder / "public-for-terminal.json")
    done = _exocheck("verify", str(folder / "coa.pdf"), "--public-key", str(public))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("genuine:")
    assert done.stderr == ""

    damaged = folder / "damaged-for-terminal.pdf"
    content = bytearray((folder / "coa.pdf").read_bytes())
    content[content.index(b"/Producer") + 3] ^= 1
    damaged.write_bytes(bytes(content))
    done = _exocheck("verify", str(damaged), "--public-key", str(public))
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "document altered after signing" in done.stderr


def test_each_silenced_warning_has_a_reason_and_others_still_show():
    assert all(w.reason and w.category.endswith("Warning") for w in THIRD_PARTY_WARNINGS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party_warnings()
        warnings.warn_explicit("DSA is deprecated", UserWarning, "pdf_cms.py", 20, "pyhanko.x")
        warnings.warn_explicit("DSA is deprecated", UserWarning, "mine.py", 1, "exocheck.nta")
        warnings.warn_explicit("something new", UserWarning, "pdf_cms.py", 20, "pyhanko.x")
    assert [(str(w.message), w.filename) for w in caught] == [
        ("DSA is deprecated", "mine.py"),
        ("something new", "pdf_cms.py"),
    ]
