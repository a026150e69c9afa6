"""What a Dask worker runs: the checksum of an input, and one sample's analysis, from paths
and checksums to files on disk.

:func:`hash_input` gives an input's SHA-256 (the client needs it for the job's identity, but
never reads a video itself). An analysis task gets the paths of a sample's videos with their SHA-256, the settings and the output
folder; it runs :func:`exocheck.nta.analyze.analyze` (the same analysis as ``exocheck analyze``),
checks that the videos it read are the ones the batch hashed, writes the sample's files with
:func:`exocheck.nta.outputs.write_outputs` (all or nothing) and returns a small record. Frames never
travel: on a cluster the videos and the output folder are on a filesystem every worker sees.

Progress (start, fraction of frames done) is published as Dask events on the batch's topic
(:func:`topic_of`).
"""

from __future__ import annotations

import os
import resource
import socket
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TOPIC = "exocheck-batch"


def topic_of(owner: str) -> str:
    """The Dask event topic of one batch (batches sharing a client or scheduler stay apart)."""
    return f"{TOPIC}:{owner}"


PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class BatchTask:
    """Everything one job needs (small: paths, checksums and settings, never frames)."""

    job_id: int
    owner: str  # the batch that submitted it (its progress events carry it)
    sample: str
    # (path, SHA-256, (size, mtime ns) of the file hashed or None for a folder) of each replicate
    videos: tuple[tuple[str, str, tuple[int, int] | None], ...]
    conditions: Any  # exocheck.nta.analyze.Conditions
    settings: Any  # exocheck.nta.analyze.AnalysisSettings
    calibration: Any  # exocheck.nta.concentration.Calibration | None
    dilution_factor: float | None
    out_dir: str  # the sample's folder
    version: str  # exocheck version of the batch
    calibration_override: str | None = None  # reason to use a calibration from other optics
    allow_reuse: str | None = None  # reason to accept the same video twice
    override: str | None = None  # reason for values given against the file or the method
    stamp: dict[str, Any] | None = None  # the method the record names (exocheck.methods)
    notes: tuple[str, ...] = ()  # warnings of the method's preparation (an expired calibration)


class _Events:
    """Progress of one task as Dask events (nothing when not run by a Dask worker)."""

    def __init__(self, task: BatchTask) -> None:
        self.task = task
        self.worker = None
        try:
            from distributed import get_worker

            self.worker = get_worker()
        except (ImportError, ValueError):
            pass
        self.name = (
            self.worker.address if self.worker is not None else f"{socket.gethostname()}:local"
        )
        self.total = 0
        self.done = 0
        self.sent_at = 0.0

    def send(self, kind: str, **fields: Any) -> None:
        if self.worker is None:
            return
        message = {"job": self.task.job_id, "owner": self.task.owner, "event": kind, **fields}
        try:
            self.worker.log_event(topic_of(self.task.owner), message)
        except Exception:  # progress is a courtesy: never let it fail a job
            pass

    def frames(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.total and now - self.sent_at >= PROGRESS_EVERY_S:
            self.sent_at = now
            self.send("progress", fraction=min(self.done / self.total, 0.99))


def file_stamp(path: Path) -> tuple[int, int] | None:
    """Size and modification time (ns) of a file; None for a folder of frames."""
    if path.is_dir():
        return None
    info = path.stat()
    return (info.st_size, info.st_mtime_ns)


def hash_input(path: str) -> tuple[str, tuple[int, int] | None, str | None]:
    """What a worker runs first for each input: its SHA-256, the stamp of the file it hashed,
    and the worker's address (its analysis goes to the same worker, whose page cache holds the
    file).

    The analysis task checks the stamp instead of hashing the file again (a file changed after it
    was hashed fails its job); a folder of frames has no stamp and is hashed again. The batch's
    client sends paths only and never reads a video.
    """
    from exocheck.nta.checks import sha256_input

    where = Path(path)
    before = file_stamp(where)
    checksum = sha256_input(where)
    if file_stamp(where) != before:
        raise OSError(0, "the file changed while it was being read", path)
    address = None
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        pass
    return checksum, before, address


def _error_line(exc: BaseException) -> str:
    from exocheck.errors import ExocheckError

    if isinstance(exc, ExocheckError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return "out of memory on the worker"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _remove_leftovers(folder: Path) -> None:
    """Temporary files of an earlier attempt at this job that was killed while writing."""
    from exocheck.nta.outputs import RESULT_FILES

    if not folder.is_dir():
        return
    for name in RESULT_FILES:
        for leftover in folder.glob(f".{name}.*"):
            leftover.unlink(missing_ok=True)


def run_task(task: BatchTask) -> dict[str, Any]:
    """Analyse one sample and write its files; returns a small record (never raises)."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    events = _Events(task)
    events.send("start", worker=events.name, at=started.isoformat())
    record: dict[str, Any] = {
        "job_id": task.job_id,
        "sample": task.sample,
        "worker": events.name,
        "started_at": started,
    }
    try:
        record.update(_analyse(task, events))
        record["status"] = "done"
    except Exception as exc:
        record.update(status="failed", error=_error_line(exc))
    record["finished_at"] = datetime.now(UTC)
    record["elapsed_s"] = time.perf_counter() - clock
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    record["pid"] = os.getpid()
    return record


def _analyse(task: BatchTask, events: _Events) -> dict[str, Any]:
    from exocheck import __version__
    from exocheck.errors import AnalysisError, ParameterError
    from exocheck.io.video import open_video
    from exocheck.nta.analyze import analyze
    from exocheck.nta.outputs import write_outputs

    if task.version != __version__:
        raise ParameterError(
            f"this worker runs exocheck {__version__}, the batch was started with "
            f"{task.version}: install the same version on every worker"
        )
    paths = [Path(p) for p, _, _ in task.videos]
    for path, _, stamp in task.videos:
        if stamp is not None and file_stamp(Path(path)) != tuple(stamp):
            raise AnalysisError(
                f"{path}: the file changed after the batch read it (size or modification time "
                "differs); run the batch again"
            )
    total = 0
    for path in paths:
        with open_video(
            path, fps=task.conditions.fps, pixel_size_um=task.conditions.pixel_size_um
        ) as v:
            total += v.meta.n_frames
    events.total = total
    # one analysis per single-threaded worker: the workers fill the cores, not the threads
    settings = replace(task.settings, workers=1)
    measurement, analyses, _ = analyze(
        paths,
        task.conditions,
        settings,
        task.calibration,
        task.sample,
        progress=events.frames,
        dilution_factor=task.dilution_factor,
        calibration_override=task.calibration_override,
        allow_reuse=task.allow_reuse,
        checksums=[checksum if stamp is not None else None for _, checksum, stamp in task.videos],
        override=task.override,
    )
    if task.stamp is not None:
        from exocheck.methods.stamps import stamp_with

        stamp_with(measurement, task.stamp, task.notes)
    for analysis, (path, expected, _) in zip(analyses, task.videos, strict=True):
        if expected and analysis.sha256 and analysis.sha256 != expected:
            raise AnalysisError(
                f"{path}: the file changed after the batch read it (SHA-256 differs); run the "
                "batch again"
            )
    folder = Path(task.out_dir)
    _remove_leftovers(folder)
    result = write_outputs(folder, measurement, analyses)
    return {
        "result_path": str(folder),
        "result_json": str(result),
        "d50_nm": measurement.size.d50_nm,
        "particles_per_ml": measurement.concentration.particles_per_ml,
        "videos": len(paths),
    }
