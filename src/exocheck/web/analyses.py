"""Analyses of uploaded videos: jobs of the batch runner, run beside the service, never in a
request.

An upload becomes a job in the store's job table at once (:meth:`AnalysisQueue.submit` returns
its id); one background thread hands queued samples to :func:`exocheck.batch.run_batch` on a
Dask cluster kept for the service's lifetime (local worker processes, or ``EXOCHECK_SCHEDULER``),
which analyses them in other processes, records progress and outcome in the job table and enters
the measurement in the lot as the analyst who uploaded it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exocheck.batch.manifest import SampleSpec
from exocheck.errors import ExocheckError

log = logging.getLogger("exocheck.web")
#: niceness of local analysis workers: the service's requests come first on a shared machine
WORKER_NICENESS = 10


def lower_priority(niceness: int = WORKER_NICENESS) -> None:
    """Run this process at a lower CPU priority: every thread now, and (inherited) every thread
    its threads start later. Runs inside each local Dask worker process."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process's nice value
        with contextlib.suppress(OSError):
            os.nice(niceness)
        return
    for tid in threads:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, niceness)


@dataclass(frozen=True)
class _Work:
    job_id: int
    spec: SampleSpec
    lot: str
    by: str


class AnalysisQueue:
    """Samples waiting for the batch runner, and the thread that feeds it."""

    def __init__(self, url: str, out: Path, *, scheduler: str | None, workers: int) -> None:
        self.url = url
        self.out = out
        self.scheduler = scheduler
        self.workers = workers
        self._queue: queue.Queue[_Work | None] = queue.Queue()
        self._notes: dict[int, str] = {}  # job id -> why its measurement was not entered
        self._pending: set[int] = set()  # jobs whose entry into their lot is not decided yet
        self._lots: dict[int, str] = {}  # job id -> the lot it was queued for
        self._thread: threading.Thread | None = None
        self._client = None
        self._cluster = None
        self._lock = threading.Lock()

    def submit(
        self, store, spec: SampleSpec, checksums: Sequence[str], *, lot: str, by: str
    ) -> int:
        """Record the job of ``spec`` (its replicate videos, with their SHA-256 ``checksums`` in
        the same order) and queue it, under the identity the batch runner gives it (its
        analysis settings, default ones when the sample has none; its calibration, stored or
        read from ``spec.calibration``)."""
        from exocheck import __version__
        from exocheck.batch.runner import job_identity
        from exocheck.nta.analyze import AnalysisSettings
        from exocheck.nta.concentration import Calibration
        from exocheck.store.jobs import JobTable

        reasons = {
            "calibration_override": None,
            "allow_reuse": None,
            "override": spec.override,
            "method": spec.stamp,
        }
        settings = spec.settings if spec.settings is not None else AnalysisSettings()
        calibration = spec.stored_calibration
        if calibration is None and spec.calibration is not None:
            calibration = Calibration.load(spec.calibration)  # as the batch runner reads it
        inputs, inputs_sha, record, settings_sha = job_identity(
            spec, list(checksums), settings, calibration, reasons
        )
        job = JobTable(store).get_or_create(
            spec.sample, inputs, inputs_sha, record, settings_sha, __version__
        )
        self._pending.add(job.id)
        self._lots[job.id] = lot
        self._queue.put(_Work(job.id, spec, lot, by))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="exocheck-analyses", daemon=True
                )
                self._thread.start()
        return job.id

    def note(self, job_id: int) -> str | None:
        """Why a finished job's measurement is not in its lot (None when it is, or unknown)."""
        return self._notes.get(job_id)

    def _connect(self):
        if self._client is None:
            from exocheck.batch.runner import connect

            self._client, self._cluster = connect(self.scheduler, self.workers)
            if self._cluster is not None:  # local workers: below the service's own threads
                self._client.run(lower_priority)
        return self._client

    def _run(self) -> None:
        from exocheck.batch import run_batch

        if sys.platform == "linux":  # nice is per thread there: this thread and those it starts
            with contextlib.suppress(OSError):  # (checksums, the Dask client and scheduler)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)

        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                result = run_batch(
                    [work.spec],
                    self.out,
                    client=self._connect(),
                    db=self.url,
                    create_db=False,
                    lot=work.lot,
                    by=work.by,
                )
                outcome = result.outcomes[0]
                if outcome.status != "done" and outcome.error:
                    self._notes[work.job_id] = outcome.error
            except ExocheckError as exc:
                self._notes[work.job_id] = str(exc)
            except Exception as exc:  # the service stays up; the job says what happened
                log.exception("analysis of job %s failed", work.job_id)
                self._notes[work.job_id] = f"the analysis could not run: {type(exc).__name__}"
            finally:
                self._pending.discard(work.job_id)

    def close(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def status(self, store, job_id: int) -> dict[str, Any] | None:
        """``{"job", "status", "progress", "sample", "videos", "lot", "measurement",
        "calibrated", "method", "replicates", "pooled", ...}`` or None.

        ``calibrated``: the job has a bead calibration; ``method``: the stamp of the method it
        runs under (None: no method); ``replicates``: per video, in the order uploaded, its own
        tracks, particles per frame, D50 and concentration once analysed (the record's
        ``per_video``); ``pooled``: the sample's result over all of them (None until done).
        """
        from sqlalchemy.exc import NoResultFound

        from exocheck.store.jobs import JobTable

        try:
            job = JobTable(store).get(job_id)
        except (NoResultFound, ExocheckError):
            return None
        note = self._notes.get(job_id)
        status = job.status
        if note and status == "queued" and job.claimed_by is None:
            status = "failed"  # the batch runner refused it before claiming it
        if note and status == "done" and job.measurement_id is None:
            status = "failed"  # analysed, but the lot refused the result (the note says why)
        elif status == "done" and job.measurement_id is None and job_id in self._pending:
            status = "running"  # analysed; whether its lot takes the result is not decided yet
        record = _record(store, job) if job.status == "done" else None
        return {
            "job": job.id,
            "status": status,
            "progress": round(job.progress, 3),
            "sample": job.sample,
            "videos": [str(i.get("name", "")) for i in job.inputs],
            "lot": job.lot or self._lots.get(job_id),
            "measurement": job.measurement_id,
            "calibrated": job.settings.get("calibration") is not None,
            "method": job.settings.get("method"),
            "replicates": _replicates(job.inputs, record),
            "pooled": _pooled(record),
            "d50_nm": job.d50_nm,
            "particles_per_ml": job.particles_per_ml,
            "error": job.error or note,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        }


def _record(store, job) -> dict[str, Any] | None:
    """The record a finished job made: the measurement its lot holds, else its ``result.json``
    (None when neither can be read)."""
    from exocheck.store import models as m

    if job.measurement_id is not None:
        with store.read() as session:
            row = session.get(m.Measurement, job.measurement_id)
            if row is not None and row.kind == "nta":
                return dict(row.data)
    if not job.result_path:
        return None
    try:
        return json.loads((Path(job.result_path) / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _replicates(inputs: list[dict[str, Any]], record: dict[str, Any] | None) -> list[dict]:
    """Each video of the job, in order, with its own figures from the record's ``per_video``
    (None before the job is done)."""
    per_video = (record or {}).get("per_video") or []
    out = []
    for i, item in enumerate(inputs):
        own = per_video[i] if i < len(per_video) else {}
        out.append(
            {
                "video": str(item.get("name", "")),
                "tracks": own.get("tracks"),
                "particles_per_frame": own.get("particles_per_frame"),
                "d50_nm": own.get("d50_nm"),
                "measured_per_ml": own.get("concentration_per_ml"),
            }
        )
    return out


def _interval(value: dict[str, Any] | None) -> list[float] | None:
    return [value["low"], value["high"]] if value else None


def _pooled(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The sample's result over all its replicates, as the record states it."""
    if record is None:
        return None
    size = record.get("size") or {}
    conc = record.get("concentration") or {}
    tracks = record.get("tracks") or {}
    ci = size.get("ci") or {}
    return {
        "d10_nm": size.get("d10_nm"),
        "d50_nm": size.get("d50_nm"),
        "d90_nm": size.get("d90_nm"),
        "d50_ci_nm": _interval(ci.get("d50_nm")),
        "particles_per_ml": conc.get("particles_per_ml"),
        "particles_per_ml_ci": _interval(conc.get("ci")),
        "measured_per_ml": conc.get("measured_per_ml"),
        "sd_per_ml": conc.get("sd_per_ml"),
        "dilution_factor": conc.get("dilution_factor"),
        "calibrated": bool(conc.get("calibrated")),
        "tracks": tracks.get("count"),
        "particles_per_frame": record.get("particles_per_frame"),
        "warnings": list(record.get("warnings") or []),
    }
