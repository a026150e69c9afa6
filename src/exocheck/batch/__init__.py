"""Many videos on many cores or machines: NTA analyses as jobs on Dask (dask.distributed).

::

    from exocheck.batch import read_manifest, run_batch

    samples = read_manifest("examples/batch-manifest.csv")
    result = run_batch(samples, "results", workers=4)         # or scheduler="tcp://host:8786"
    for outcome in result.outcomes:
        print(outcome.sample, outcome.status, outcome.d50_nm, outcome.error)

Each sample's files land in ``results/<sample>/`` exactly as ``exocheck analyze --out`` writes
them; the store's job table records every job (see :mod:`exocheck.store.jobs`).
"""

from __future__ import annotations

from exocheck.batch.manifest import (
    SampleSpec,
    expand_inputs,
    read_manifest,
    samples_from_videos,
)
from exocheck.batch.runner import BatchProgress, BatchResult, SampleOutcome, run_batch

__all__ = [
    "BatchProgress",
    "BatchResult",
    "SampleOutcome",
    "SampleSpec",
    "expand_inputs",
    "read_manifest",
    "run_batch",
    "samples_from_videos",
]
