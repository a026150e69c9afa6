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
import logging
import os
import queue
import sys
import threading
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

    def submit(self, store, spec: SampleSpec, checksum: str, *, lot: str, by: str) -> int:
        """Record the job of ``spec`` (one video, already checksummed) and queue it, under the
        identity the batch runner gives it (its analysis settings, default ones when the sample
        has none; its calibration, stored or read from ``spec.calibration``)."""
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
            spec, [checksum], settings, calibration, reasons
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
        "calibrated", ...}`` or None (``calibrated``: the job has a bead calibration)."""
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
        return {
            "job": job.id,
            "status": status,
            "progress": round(job.progress, 3),
            "sample": job.sample,
            "videos": [str(i.get("name", "")) for i in job.inputs],
            "lot": job.lot or self._lots.get(job_id),
            "measurement": job.measurement_id,
            "calibrated": job.settings.get("calibration") is not None,
            "d50_nm": job.d50_nm,
            "particles_per_ml": job.particles_per_ml,
            "error": job.error or note,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        }
