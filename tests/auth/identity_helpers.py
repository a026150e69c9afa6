"""Helpers of the identity tests (imported by name: identity_helpers): the stocked store,
passwords, ``exocheck`` run in-process with a given standard input."""

from __future__ import annotations

import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from qc_factories import SPEC_YAML, lognormal_measurement  # noqa: F401 (for conftest)

from exocheck.auth import Accounts
from exocheck.cli.main import run
from exocheck.store import Store

USERS = {"ana": "analyst", "ben": "analyst", "rita": "reviewer", "quinn": "qa", "adam": "admin"}
PRODUCT = "EXO-1"
LOT = "W-001"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def password(name: str) -> str:
    return f"{name}-secret-pw"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def exocheck(monkeypatch, capsys, *args: object, stdin: str = "") -> Outcome:
    """Run ``exocheck ARGS`` in this process, standard input from ``stdin``."""
    monkeypatch.setattr(sys, "argv", ["exocheck", *map(str, args)])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    try:
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Outcome(code, _ANSI.sub("", out), _ANSI.sub("", err))


def stock(url: str, folder: Path, *, users: bool = True) -> None:
    """Product EXO-1, the test specification, lot W-001 (entered by ana) and, with ``users``,
    one user of each role."""
    with Store.open(url) as store:
        store.add_product(PRODUCT, particles_per_unit=2e10, fill_volume_ml=1.0, by="qa-setup")
        spec = folder / "spec.yaml"
        spec.write_text(SPEC_YAML)
        store.add_specification(spec, product=PRODUCT, by="qa-setup")
        store.add_lot(LOT, PRODUCT, by="ana")
        if users:
            accounts = Accounts(store)
            for name, role in USERS.items():
                accounts.add_user(name, role=role, password=password(name), by="admin-setup")
