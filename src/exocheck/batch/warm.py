"""Dask worker preload: load exocheck's analysis in the background as a worker starts.

A worker's first job would otherwise begin by importing the analysis (numpy, pandas, scipy, the
compiled kernels: one to two seconds). Preloaded, that happens while the client is still hashing
inputs and submitting jobs. The local cluster of ``exocheck batch`` preloads it; on a cluster::

    dask worker tcp://scheduler:8786 --nthreads 1 --preload exocheck.batch.warm
"""

from __future__ import annotations

import contextlib
import threading


def _load() -> None:
    with contextlib.suppress(Exception):  # the job imports it again and reports any error
        from exocheck.nta import _kernels

        _kernels.warm_up()
        import exocheck.nta.analyze
        import exocheck.nta.outputs
        import exocheck.nta.plots  # noqa: F401


def dask_setup(worker) -> None:
    """Called by Dask as the worker starts: returns at once, loading in a thread."""
    threading.Thread(target=_load, name="exocheck-warm-up", daemon=True).start()
