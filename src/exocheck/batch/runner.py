"""The batch runner: samples in, one job each in the store, analyses on Dask, files out.

:func:`run_batch` is the one entry point; ``exocheck batch`` and the web service call it. The job
table (:mod:`exocheck.store.jobs`) is the truth: a job is created once per (inputs, settings,
version), claimed by this batch, handed to Dask as a small task (:mod:`exocheck.batch.task`), and
finished with the record the task returns. Nothing else holds state: a batch run again does only
what is not done; an interrupted one gives its jobs back; a killed one's jobs are requeued by the
next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from exocheck.batch.manifest import SampleSpec, check_sample_name
from exocheck.batch.task import BatchTask, hash_input, run_task, topic_of
from exocheck.errors import ExocheckError, ParameterError

CONNECT_TIMEOUT_S = 5.0
HEARTBEAT_EVERY_S = 10.0
STALE_AFTER_S = 120.0
PROGRESS_FLUSH_S = 2.0
POLL_S = 0.1
HASH_PRIORITY = -1  # checksum tasks yield to analyses whose inputs are hashed (page cache)


class BatchProgress(Protocol):
    """What a shell shows while a batch runs (every method is optional to act on)."""

    def start(self, total_videos: int) -> None: ...

    def advance(self, videos: float) -> None: ...

    def message(self, text: str) -> None: ...


class _Silent:
    def start(self, total_videos: int) -> None:
        pass

    def advance(self, videos: float) -> None:
        pass

    def message(self, text: str) -> None:
        pass


@dataclass
class SampleOutcome:
    """How one sample of a batch ended."""

    sample: str
    videos: int
    status: str  # done | failed
    job_id: int | None = None
    result_dir: str | None = None
    d50_nm: float | None = None
    particles_per_ml: float | None = None
    error: str | None = None
    reused: bool = False  # done by an earlier batch: not analysed again
    worker: str | None = None
    elapsed_s: float | None = None
    peak_rss_mb: float | None = None
    started_at: datetime | None = None  # on the worker (UTC)
    finished_at: datetime | None = None


@dataclass
class BatchResult:
    """The outcome of :func:`run_batch`, one entry per sample in the order given."""

    outcomes: list[SampleOutcome]
    dashboard: str | None = None
    requeued: int = 0
    wall_s: float = 0.0
    workers: int = 0
    database: str = ""
    analysed_videos: int = field(default=0)

    @property
    def failed(self) -> list[SampleOutcome]:
        return [o for o in self.outcomes if o.status != "done"]


def input_sha256(path: Path) -> str:
    """SHA-256 of an input as the analysis records it (:func:`exocheck.nta.checks.sha256_input`)."""
    from exocheck.nta.checks import sha256_input

    return sha256_input(path)


def _canonical_sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def job_identity(
    spec: SampleSpec,
    checksums: Sequence[str],
    settings: Any,
    calibration: Any,
    reasons: dict[str, str | None] | None = None,
) -> tuple[list[dict[str, str]], str, dict[str, Any], str]:
    """Inputs, their hash, the settings record and its hash of one sample's job.

    Inputs are identified by file name and content (a video moved to another folder is the same
    input); the settings by everything that goes into the result: sample name, conditions,
    analysis settings (as recorded), dilution, calibration, the reasons given for exceptions
    (``calibration_override``, ``allow_reuse``, ``override``) and the method stamp (``method``),
    which the record keeps.
    """
    from exocheck.nta.analyze import recorded_settings

    inputs = [
        {"name": v.name, "path": str(v), "sha256": c}
        for v, c in zip(spec.videos, checksums, strict=True)
    ]
    inputs_sha256 = _canonical_sha256([[i["name"], i["sha256"]] for i in inputs])
    record = {
        "sample": spec.sample,
        "conditions": asdict(spec.conditions),
        "analysis": recorded_settings(settings),
        "dilution_factor": spec.dilution_factor,
        "calibration": asdict(calibration) if calibration is not None else None,
        **{k: v for k, v in (reasons or {}).items() if v is not None},
    }
    return inputs, inputs_sha256, record, _canonical_sha256(record)


def _check_out(out: Path) -> None:
    base = out.absolute()
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ParameterError(f"--out {out}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ParameterError(f"--out {out}: no permission to write in {base}")


def _dashboard_available() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def connect(scheduler: str | None, workers: int | None, timeout_s: float = CONNECT_TIMEOUT_S):
    """A Dask client: on the scheduler at ``scheduler``, or on a new local cluster.

    The local cluster has ``workers`` (default: the number of cores) single-threaded worker
    processes. Returns ``(client, cluster or None)``.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        if "://" not in scheduler:
            scheduler = f"tcp://{scheduler}"
        try:
            client = Client(scheduler, timeout=f"{timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if len(reason) > 160:
                reason = reason[:157] + "..."
            raise ExocheckError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout_s:g} s ({reason})"
            ) from None
        return client, None
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ParameterError(f"--workers must be >= 1, got {n}")
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # any free port: several batches may run on one machine
        # the local workers' own logs stay quiet below CRITICAL: when a batch is interrupted
        # (Ctrl-C reaches the whole process group) a worker whose scheduler has just closed logs
        # its failed heartbeat with a traceback; a job's failure reaches the user through the
        # job table and the closing table instead
        silence_logs=logging.CRITICAL,
        preload=["exocheck.batch.warm"],  # workers load the analysis while the client starts
    )
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def dashboard_link(client) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one."""
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:
        return None
    if "dashboard" not in services:
        return None
    return client.dashboard_link


def run_batch(
    samples: Sequence[SampleSpec],
    out: str | Path,
    *,
    settings: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    db: str | None = None,
    create_db: bool = True,
    lot: str | None = None,
    by: str | None = None,
    rerun: bool = False,
    calibration_override: str | None = None,
    allow_reuse: str | None = None,
    stale_after_s: float = STALE_AFTER_S,
    progress: BatchProgress | None = None,
) -> BatchResult:
    """Analyse ``samples`` on Dask into ``out/<sample>/``, recording every job in the store.

    Parameters
    ----------
    samples
        What to analyse (see :mod:`exocheck.batch.manifest`).
    out
        Output folder: each sample's files go to ``out/<sample>/`` exactly as
        ``exocheck analyze --out`` writes them. On a cluster it must be on a filesystem that
        every worker sees.
    settings
        :class:`exocheck.nta.analyze.AnalysisSettings` for every sample (default settings).
    workers, scheduler, client
        Where to run: an existing Dask ``client``; else the scheduler at ``scheduler``
        (``tcp://host:port``, answered within 5 s or an error); else a local cluster of
        ``workers`` single-threaded processes (default: one per core).
    db, create_db
        Store holding the job table (default ``$EXOCHECK_DATABASE_URL``, then the per-user file);
        with ``create_db=False`` a database that does not exist yet is refused.
    lot, by
        Enter each sample's measurement in this lot of the store, as ``by``.
    rerun
        Analyse again samples already done (a new job is not created: the same one runs again).
    calibration_override, allow_reuse
        Reasons to accept a calibration made on other optics, or the same video twice in a
        sample, as for :func:`exocheck.nta.analyze.analyze`.
    stale_after_s
        A job whose batch has not been heard of for this long is requeued.
    progress
        Receives the progress (videos) and messages.

    Returns
    -------
    BatchResult
        One :class:`SampleOutcome` per sample; :attr:`BatchResult.failed` lists failures.
    """
    from exocheck import __version__
    from exocheck.nta.analyze import AnalysisSettings
    from exocheck.nta.concentration import Calibration
    from exocheck.store import Store
    from exocheck.store.jobs import JobTable, owner_token

    began = time.perf_counter()
    show = progress or _Silent()
    settings = settings if settings is not None else AnalysisSettings()
    out = Path(out)
    names = [check_sample_name(s.sample) for s in samples]
    if not samples:
        raise ParameterError("no sample to analyse")
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ParameterError(f"duplicate entry: sample {', '.join(map(repr, doubled))} given twice")
    if lot is not None and not (by or "").strip():
        raise ParameterError("--lot needs the name of who enters the measurements (--by)")
    _check_out(out)
    calibrations = {
        path: Calibration.load(path)
        for path in sorted({s.calibration for s in samples if s.calibration is not None})
    }
    store = Store.open(db, create=create_db)
    owned_client = client is None
    cluster = None
    hashes: dict[Path, Any] = {}
    try:
        if lot is not None:
            from exocheck.lots.actions import ensure_open

            ensure_open(store, lot)  # an unknown or signed-off lot is refused before any work
        jobs = JobTable(store)
        requeued = jobs.requeue_stale(stale_after_s)
        if requeued:
            show.message(
                f"requeued {len(requeued)} job(s) left unfinished by an interrupted batch: "
                + ", ".join(j.sample for j in requeued[:5])
                + (" ..." if len(requeued) > 5 else "")
            )
        if owned_client:
            client, cluster = connect(scheduler, workers)
        owner = owner_token(uuid.uuid4().hex[:12])
        # The workers hash their inputs (the client sends paths and never reads a video); each
        # sample's analysis is submitted once its inputs' checksums are in, to the worker that
        # hashed its first input, and runs before further checksums.
        tag = owner.rsplit(":", 1)[-1]
        videos = list(dict.fromkeys(v for s in samples for v in s.videos))
        hashes = {
            v: client.submit(
                hash_input, str(v.absolute()), key=f"exocheck-hash-{i}-{tag}", pure=False,
                priority=HASH_PRIORITY,
            )
            for i, v in enumerate(videos)
        }  # fmt: skip
        result = _Run(
            samples, out, settings, calibrations, jobs, client, owner, __version__,
            store, lot, by, rerun, show,
            {"calibration_override": calibration_override, "allow_reuse": allow_reuse},
        ).run(hashes)  # fmt: skip
        result.requeued = len(requeued)
        result.database = store.url
    finally:
        if hashes and client is not None:  # a batch stopped early: its checksums not wanted
            with contextlib.suppress(Exception):
                client.cancel(list(hashes.values()))
        if owned_client and client is not None:
            client.close()
            if cluster is not None:
                cluster.close()
        store.close()
    result.wall_s = time.perf_counter() - began
    return result


class _Run:
    """One batch's loop: hash and submit samples in order, follow events, record completions."""

    def __init__(
        self, samples, out, settings, calibrations, jobs, client, owner, version, store, lot,
        by, rerun, show, reasons,
    ) -> None:  # fmt: skip
        self.samples = list(samples)
        self.out = out
        self.settings = settings
        self.calibrations = calibrations
        self.jobs = jobs
        self.client = client
        self.owner = owner
        self.version = version
        self.store = store
        self.lot = lot
        self.by = by
        self.rerun = rerun
        self.show = show
        self.reasons = reasons
        self.events: queue.Queue = queue.Queue()
        self.outcomes: dict[str, SampleOutcome] = {}
        self.active: dict[Any, tuple[int, SampleSpec]] = {}  # future -> (job id, sample)
        self.fraction: dict[int, float] = {}  # job id -> fraction shown on the bar
        self.videos_of: dict[int, int] = {}
        self.pending_progress: dict[int, float] = {}
        self.analysed_videos = 0

    # -- events from the workers (called on the client's event loop thread) --
    def _on_event(self, event) -> None:
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if isinstance(message, dict) and message.get("owner") == self.owner:
            self.events.put(message)

    def run(self, hashes: dict[Path, Any]) -> BatchResult:
        self.client.subscribe_topic(topic_of(self.owner), self._on_event)
        info = self.client.scheduler_info()
        n_workers = len(info.get("workers", {}))
        dashboard = dashboard_link(self.client)
        where = info.get("address", "")
        note = "" if _dashboard_available() else " (its plots need bokeh>=3.1 installed)"
        self.show.message(
            f"Dask scheduler {where} with {n_workers} worker(s); dashboard: "
            + (f"{dashboard}{note}" if dashboard else "none")
        )
        if n_workers == 0:
            self.show.message("the scheduler has no worker yet: the jobs wait until one joins")
        try:
            self.show.start(sum(len(s.videos) for s in self.samples))
            self._loop(hashes)
        except BaseException:
            for future in self.active:
                future.cancel()
            released = self.jobs.release(self.owner)
            if released:
                self.show.message(f"gave back {released} unfinished job(s): run again to resume")
            raise
        finally:
            try:
                self.client.unsubscribe_topic(topic_of(self.owner))
            except Exception:
                pass
        return BatchResult(
            outcomes=[self.outcomes[s.sample] for s in self.samples],
            dashboard=dashboard,
            workers=n_workers,
            analysed_videos=self.analysed_videos,
        )

    def _loop(self, hashes: dict[Path, Any]) -> None:
        waiting = list(self.samples)
        last_beat = last_flush = time.monotonic()
        while waiting or self.active:
            while waiting and all(hashes[v].done() for v in waiting[0].videos):
                spec = waiting.pop(0)
                self._submit(spec, [hashes[v] for v in spec.videos])
            self._drain_events()
            for future in [f for f in self.active if f.done()]:
                self._complete(future)
            now = time.monotonic()
            if now - last_flush >= PROGRESS_FLUSH_S:
                last_flush = now
                self.jobs.set_progress(self.pending_progress, self.owner)
                self.pending_progress = {}
            if now - last_beat >= HEARTBEAT_EVERY_S:
                last_beat = now
                self.jobs.heartbeat(self.owner)
            if waiting or self.active:
                time.sleep(POLL_S)

    def _submit(self, spec: SampleSpec, hash_futures: list[Any]) -> None:
        n = len(spec.videos)
        try:
            hashed = [f.result() for f in hash_futures]
        except OSError as exc:
            self._fail(spec, f"{exc.filename or spec.videos[0]}: {exc.strerror or exc}")
            return
        except Exception as exc:  # the worker hashing it died, or the task was lost
            reason = " ".join(str(exc).split()) or type(exc).__name__
            self._fail(spec, f"{spec.videos[0]}: the cluster could not read it: {reason}")
            return
        checksums = [checksum for checksum, _, _ in hashed]
        calibration = spec.stored_calibration or (
            self.calibrations.get(spec.calibration) if spec.calibration else None
        )
        settings = spec.settings if spec.settings is not None else self.settings
        reasons = self.reasons | {"override": spec.override, "method": spec.stamp}
        inputs, inputs_sha, record, settings_sha = job_identity(
            spec, checksums, settings, calibration, reasons
        )
        job = self.jobs.get_or_create(
            spec.sample, inputs, inputs_sha, record, settings_sha, self.version
        )
        target = self.out / spec.sample
        if job.status == "done" and not self.rerun and self._reuse(spec, job, target):
            return
        if not self.jobs.claim(job.id, self.owner, rerun_done=True):
            holder = self.jobs.get(job.id).claimed_by
            self._fail(spec, f"being analysed by another batch ({holder})", job.id)
            return
        task = BatchTask(
            job_id=job.id,
            owner=self.owner,
            sample=spec.sample,
            videos=tuple(
                (str(v.absolute()), c, stamp)
                for v, (c, stamp, _) in zip(spec.videos, hashed, strict=True)
            ),
            conditions=spec.conditions,
            settings=settings,
            calibration=calibration,
            dilution_factor=spec.dilution_factor,
            out_dir=str(target.absolute()),
            version=self.version,
            **self.reasons,
            override=spec.override,
            stamp=spec.stamp,
            notes=spec.notes,
        )
        hashed_on = [where for _, _, where in hashed if where]
        future = self.client.submit(
            run_task, task, key=f"exocheck-job-{job.id}-{self.owner.rsplit(':', 1)[-1]}",
            pure=False, workers=hashed_on[:1] or None, allow_other_workers=True,
        )  # fmt: skip
        self.active[future] = (job.id, spec)
        self.fraction[job.id] = 0.0
        self.videos_of[job.id] = n

    def _reuse(self, spec: SampleSpec, job, target: Path) -> bool:
        """A job done before: its files where asked (copied if they are elsewhere)."""
        here = (target / "result.json").is_file() and job.result_path == str(target.absolute())
        if not here:
            source = Path(job.result_path) if job.result_path else None
            if source is None or not (source / "result.json").is_file():
                return False  # its files are gone: analyse again
            from exocheck.nta.outputs import RESULT_FILES
            from exocheck.records import atomic_write_files

            files = {n: (source / n).read_bytes() for n in RESULT_FILES if (source / n).is_file()}
            atomic_write_files(target, files)
            self.jobs.relocate(job.id, str(target.absolute()))
        outcome = SampleOutcome(
            sample=spec.sample, videos=len(spec.videos), status="done", job_id=job.id,
            result_dir=str(target), d50_nm=job.d50_nm, particles_per_ml=job.particles_per_ml,
            reused=True, worker=job.worker, elapsed_s=job.elapsed_s,
        )  # fmt: skip
        self._enter_in_lot(outcome, job)
        self.outcomes[spec.sample] = outcome
        self.show.advance(len(spec.videos))
        return True

    def _fail(self, spec: SampleSpec, error: str, job_id: int | None = None) -> None:
        self.outcomes[spec.sample] = SampleOutcome(
            sample=spec.sample, videos=len(spec.videos), status="failed", job_id=job_id,
            error=error,
        )  # fmt: skip
        self.show.advance(len(spec.videos))

    def _drain_events(self) -> None:
        while True:
            try:
                message = self.events.get_nowait()
            except queue.Empty:
                return
            job_id = message.get("job")
            if job_id not in self.fraction:
                continue
            if message.get("event") == "start":
                at = datetime.fromisoformat(message["at"])
                self.jobs.started(job_id, self.owner, str(message.get("worker")), at)
                self._show_fraction(job_id, 0.0)  # a restarted job starts over
            elif message.get("event") == "progress":
                fraction = float(message.get("fraction", 0.0))
                self._show_fraction(job_id, fraction)
                self.pending_progress[job_id] = fraction

    def _show_fraction(self, job_id: int, fraction: float) -> None:
        step = (fraction - self.fraction[job_id]) * self.videos_of[job_id]
        self.fraction[job_id] = fraction
        if step:
            self.show.advance(step)

    def _complete(self, future) -> None:
        job_id, spec = self.active.pop(future)
        self._drain_events()  # a late progress event must not move the bar past the end
        if future.status == "finished":
            record = future.result()
        else:
            try:
                exc = future.exception()
                reason = " ".join(str(exc).split()) or type(exc).__name__
            except Exception as err:  # cancelled: the scheduler lost it
                reason = type(err).__name__
            record = {"status": "failed", "error": f"the cluster could not run the job: {reason}"}
        self.jobs.finish(job_id, self.owner, record)
        self.pending_progress.pop(job_id, None)
        self._show_fraction(job_id, 1.0)
        del self.fraction[job_id]
        outcome = SampleOutcome(
            sample=spec.sample, videos=len(spec.videos), status=record["status"], job_id=job_id,
            result_dir=str(self.out / spec.sample) if record["status"] == "done" else None,
            d50_nm=record.get("d50_nm"), particles_per_ml=record.get("particles_per_ml"),
            error=record.get("error"), worker=record.get("worker"),
            elapsed_s=record.get("elapsed_s"), peak_rss_mb=record.get("peak_rss_mb"),
            started_at=record.get("started_at"), finished_at=record.get("finished_at"),
        )  # fmt: skip
        if outcome.status == "done":
            self.analysed_videos += len(spec.videos)
            self._enter_in_lot(outcome, self.jobs.get(job_id))
        self.outcomes[spec.sample] = outcome

    def _enter_in_lot(self, outcome: SampleOutcome, job) -> None:
        """Enter the sample's record in the lot (once per job and lot)."""
        if self.lot is None or (job.measurement_id is not None and job.lot == self.lot):
            return
        from exocheck.records import Measurement

        result = Path(outcome.result_dir or "") / "result.json"
        try:
            measurement = Measurement.load(result)
            measurement_id = self.store.add_measurement(
                self.lot, measurement, by=self.by, original_file=result
            )
        except ExocheckError as exc:
            outcome.status = "failed"
            outcome.error = f"analysed, but not entered in lot {self.lot}: {exc}"
            return
        self.jobs.link_measurement(job.id, self.lot, measurement_id)
