"""Entry point of the ``exocheck`` command.

Each command group lives in its own module with a ``register(app)`` function; this module only
assembles them and turns :class:`~exocheck.errors.ExocheckError` into one line on stderr and exit 2.
"""

from __future__ import annotations

import gc
import sys
from typing import Annotated

import typer

from exocheck import __version__
from exocheck.cli import (
    batch_cmds,
    calibrate_cmds,
    demo,
    imports,
    lot_cmds,
    method_cmds,
    nta_cmds,
    qc_cmds,
    signing_cmds,
    simulate,
    stability,
    store_cmds,
    study_cmds,
    web_cmds,
)
from exocheck.cli._common import err_console
from exocheck.cli._quiet import quiet_third_party_warnings
from exocheck.errors import ExocheckError

app = typer.Typer(
    name="exocheck",
    help="Verify what is inside an extracellular-vesicle (exosome) product: NTA analysis, "
    "instrument imports, batch QC and stability.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"exocheck {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """exocheck: open, reproducible verification of exosome products."""


# Command groups: each module adds its commands. Keep one line per module.
_COMMAND_MODULES: tuple = (
    demo,
    simulate,
    nta_cmds,
    calibrate_cmds,
    stability,
    store_cmds,
    lot_cmds,
    qc_cmds,
    imports,
    study_cmds,
    batch_cmds,
    web_cmds,
    signing_cmds,
    method_cmds,
)
for _module in _COMMAND_MODULES:
    _module.register(app)


def run() -> None:
    """Console-script entry point: one-line errors, exit status 2 for user mistakes.

    Third-party warnings named in :mod:`exocheck.cli._quiet` are silenced first.
    """
    quiet_third_party_warnings()
    sys.argv[1:] = nta_cmds.spread_multi_values(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except ExocheckError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # a file the user named cannot be read or written
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        err_console.print(
            f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # a mistyped command line (unknown option, bad number, missing --out): one line, exit 2
        format_message = getattr(exc, "format_message", None)
        if format_message is None or not hasattr(exc, "exit_code"):
            raise
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see '{ctx.command_path} --help')"
        message = " ".join(str(format_message()).split())
        err_console.print(f"[bold red]error:[/] {message}{hint}", highlight=False, soft_wrap=True)
        sys.exit(int(exc.exit_code) or 2)
    if isinstance(code, int) and code:
        sys.exit(code)


def main() -> None:
    """The ``exocheck`` program: :func:`run`, then a quick exit.

    By the time the command returns, its outputs are written and closed. At exit the interpreter
    would still have the garbage collector walk every object that numpy, pandas, numba and
    matplotlib created (about 0.5 s after an analysis); freezing them skips that walk, and the
    operating system reclaims the memory anyway. Only the program does this: :func:`run` called
    in-process (tests, notebooks) leaves the collector alone.
    """
    try:
        run()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
