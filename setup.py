"""Build step of exocheck: the compiled detection and linking kernels go into the package.

``pip install`` builds a wheel and installs it; while building, numba compiles the kernels of
:mod:`exocheck.nta._kernels` into the package's ``nta/__pycache__`` (numba's own cache, keyed by
the source's content hash, numba's version and the processor), so the first analysis after
installation loads machine code instead of compiling for about 10 s. A wheel built on another
kind of processor, or installed next to another numba, finds no matching entry and compiles on
first use, as before (announced). A failure here never fails the build.
"""

from __future__ import annotations

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithKernels(build_py):
    """``build_py``, then the kernels compiled into the built package (best effort)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install compiles in the source tree on first use
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE_DIR")}
        env["PYTHONPATH"] = os.path.abspath(self.build_lib)
        code = "from exocheck.nta import _kernels; _kernels.build_cache()"
        try:
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
            )
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"exocheck: kernels not compiled at build time ({exc})", file=sys.stderr)
            return
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"exocheck: kernels not compiled at build time ({last})", file=sys.stderr)


setup(cmdclass={"build_py": BuildWithKernels})
