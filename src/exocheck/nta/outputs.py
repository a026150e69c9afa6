"""The files of an analysis: ``result.json``, ``tracks.parquet`` and ``size_distribution.png``.

``exocheck analyze --out DIR`` and every sample of ``exocheck batch`` write exactly these files, the
same way: everything is rendered in memory first, then written all or nothing
(:func:`exocheck.records.atomic_write_files`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from exocheck.nta.analyze import VideoAnalysis
    from exocheck.records import Measurement

RESULT_FILES = ("result.json", "tracks.parquet", "size_distribution.png")


def parquet_bytes(table: pd.DataFrame, rows_per_group: int = 65_536) -> io.BytesIO:
    """The table as Parquet, converted to Arrow a row group at a time.

    Converting a whole table at once holds a second copy of it (50 MB for a 5-minute capture);
    row groups of 64k rows keep that to a few MB.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    schema = pa.Schema.from_pandas(table.iloc[:0], preserve_index=False)
    with pq.ParquetWriter(buffer, schema) as writer:
        for start in range(0, max(len(table), 1), rows_per_group):
            part = table.iloc[start : start + rows_per_group]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
    return buffer


def tracks_table(analyses: Sequence[VideoAnalysis]) -> pd.DataFrame:
    """All tracks with a ``video`` column, taken from the analyses (which give them up).

    The last step of an analysis: the per-video feature tables are released and the tracks are
    not copied for a single video, so the memory this step adds stays small for long videos.
    """
    import pandas as pd

    parts = []
    for i, a in enumerate(analyses):
        a.features = a.features.iloc[:0]
        a.tracks.insert(0, "video", i)
        parts.append(a.tracks)
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def write_outputs(
    folder: str | Path, measurement: Measurement, analyses: Sequence[VideoAnalysis]
) -> Path:
    """Write the analysis files into ``folder`` all or nothing; returns the ``result.json`` path.

    The analyses give up their feature and track tables (see :func:`tracks_table`).
    """
    from exocheck.nta.plots import size_distribution_png
    from exocheck.records import atomic_write_files

    folder = Path(folder)
    buffer = parquet_bytes(tracks_table(analyses))
    result = json.loads(measurement.to_json())
    outputs = {
        "tracks.parquet": buffer.getbuffer(),
        "size_distribution.png": size_distribution_png(measurement),
        "result.json": json.dumps(result, indent=2).encode(),
    }
    atomic_write_files(folder, outputs)
    return folder / "result.json"
