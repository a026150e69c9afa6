"""The batch job table: the record of every analysis a batch ran, is running or will run.

One row per (inputs, settings, exocheck version): the unique constraint, not a check in Python,
makes the same analysis impossible to record twice, so a batch run again (or by two people at
once) analyses only what is not done. A job is *claimed* by the batch process that runs it
(``claimed_by`` = ``host:pid:token``, refreshed by ``heartbeat_at``); a job claimed by a process
that is gone, or whose heartbeat stopped, is requeued by the next batch.

Only the batch's client process writes here: workers get paths and checksums and hand back small
records, so a cluster's workers never need the database.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from exocheck.store.base import StoreBase, aware
from exocheck.store.models import Base, utcnow

STATUSES = ("queued", "running", "done", "failed")


class BatchJob(Base):
    """One analysis of one sample (its replicate videos) with one set of settings."""

    __tablename__ = "batch_jobs"
    __table_args__ = (
        UniqueConstraint(
            "inputs_sha256", "settings_sha256", "exocheck_version", name="uq_batch_jobs_identity"
        ),
        CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="ck_batch_jobs_status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample: Mapped[str] = mapped_column(String(200))
    inputs: Mapped[list[Any]] = mapped_column(JSON)  # [{"path", "name", "sha256"}] in order
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    settings_sha256: Mapped[str] = mapped_column(String(64))
    exocheck_version: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    result_path: Mapped[str | None] = mapped_column(Text)
    d50_nm: Mapped[float | None] = mapped_column(Float)
    particles_per_ml: Mapped[float | None] = mapped_column(Float)
    lot: Mapped[str | None] = mapped_column(String(200))
    measurement_id: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(300))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    elapsed_s: Mapped[float | None] = mapped_column(Float)


@dataclass(frozen=True)
class JobView:
    """A job row as plain data."""

    id: int
    sample: str
    status: str
    progress: float
    error: str | None
    result_path: str | None
    d50_nm: float | None
    particles_per_ml: float | None
    claimed_by: str | None
    measurement_id: int | None
    lot: str | None
    worker: str | None
    attempts: int
    inputs: list[Any]
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_s: float | None
    settings: dict[str, Any] = field(default_factory=dict)  # what the job is recorded with


def _view(job: BatchJob) -> JobView:
    return JobView(
        id=job.id,
        sample=job.sample,
        status=job.status,
        progress=job.progress or 0.0,
        error=job.error,
        result_path=job.result_path,
        d50_nm=job.d50_nm,
        particles_per_ml=job.particles_per_ml,
        claimed_by=job.claimed_by,
        measurement_id=job.measurement_id,
        lot=job.lot,
        worker=job.worker,
        attempts=job.attempts or 0,
        inputs=list(job.inputs or []),
        started_at=aware(job.started_at),
        finished_at=aware(job.finished_at),
        elapsed_s=job.elapsed_s,
        settings=dict(job.settings or {}),
    )


def owner_token(token: str) -> str:
    """``host:pid:token``: who claims a job (this process, on this host)."""
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


def _owner_gone(owner: str) -> bool:
    """True when ``owner`` is a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobTable:
    """The batch jobs of a store: create-or-find, claim, progress, finish, requeue."""

    def __init__(self, store: StoreBase) -> None:
        self.store = store

    def get_or_create(
        self,
        sample: str,
        inputs: list[dict[str, str]],
        inputs_sha256: str,
        settings: dict[str, Any],
        settings_sha256: str,
        version: str,
    ) -> JobView:
        """The job of these inputs, settings and version: the existing one, or a new queued one.

        The insert relies on the unique constraint: when another batch inserted the same job
        first, the insert fails and the existing row is returned.
        """
        identity = (
            BatchJob.inputs_sha256 == inputs_sha256,
            BatchJob.settings_sha256 == settings_sha256,
            BatchJob.exocheck_version == version,
        )
        with self.store._action() as session:
            job = session.scalar(select(BatchJob).where(*identity))
            if job is not None:
                return _view(job)
            try:
                with session.begin_nested():
                    job = BatchJob(
                        sample=sample,
                        inputs=inputs,
                        inputs_sha256=inputs_sha256,
                        settings=settings,
                        settings_sha256=settings_sha256,
                        exocheck_version=version,
                        status="queued",
                        progress=0.0,
                        attempts=0,
                    )
                    session.add(job)
                    session.flush()
            except IntegrityError:
                job = session.scalar(select(BatchJob).where(*identity))
                if job is None:  # pragma: no cover - the conflicting row vanished
                    raise
            return _view(job)

    def get(self, job_id: int) -> JobView:
        with self.store._read() as session:
            return _view(session.get_one(BatchJob, job_id))

    def list(self, ids: Iterable[int] | None = None) -> list[JobView]:
        """Jobs by id (all jobs when ``ids`` is None), oldest first."""
        query = select(BatchJob).order_by(BatchJob.id)
        if ids is not None:
            query = query.where(BatchJob.id.in_(list(ids)))
        with self.store._read() as session:
            return [_view(j) for j in session.scalars(query)]

    def requeue_stale(self, stale_after_s: float) -> list[JobView]:
        """Give back jobs left queued or running by a batch that is gone.

        A claimant is gone when it was a process on this host that no longer exists, or when its
        heartbeat is older than ``stale_after_s``. Returns the requeued jobs.
        """
        limit = utcnow() - timedelta(seconds=stale_after_s)
        with self.store._action() as session:
            claimed = session.scalars(
                select(BatchJob).where(
                    BatchJob.status.in_(("queued", "running")), BatchJob.claimed_by.is_not(None)
                )
            ).all()
            stale = [
                j
                for j in claimed
                if _owner_gone(j.claimed_by or "")
                or j.heartbeat_at is None
                or aware(j.heartbeat_at) < limit
            ]
            for job in stale:
                job.status, job.claimed_by, job.worker, job.progress = "queued", None, None, 0.0
            return [_view(j) for j in stale]

    def claim(self, job_id: int, owner: str, *, rerun_done: bool = False) -> bool:
        """Take a job for ``owner``: True when it was free (queued or failed, not claimed)."""
        free = ["queued", "failed", *(["done"] if rerun_done else [])]
        with self.store._action() as session:
            result = session.execute(
                update(BatchJob)
                .where(
                    BatchJob.id == job_id,
                    BatchJob.status.in_(free),
                    or_(BatchJob.claimed_by.is_(None), BatchJob.claimed_by == owner),
                )
                .values(
                    status="queued",
                    claimed_by=owner,
                    heartbeat_at=utcnow(),
                    progress=0.0,
                    error=None,
                    worker=None,
                    started_at=None,
                    finished_at=None,
                    elapsed_s=None,
                )
            )
            return result.rowcount == 1

    def heartbeat(self, owner: str) -> None:
        """Refresh the claim of every unfinished job of ``owner``."""
        with self.store._action() as session:
            session.execute(
                update(BatchJob)
                .where(BatchJob.claimed_by == owner, BatchJob.status.in_(("queued", "running")))
                .values(heartbeat_at=utcnow())
            )

    def started(self, job_id: int, owner: str, worker: str, at: datetime) -> None:
        """A worker began the job (counted as an attempt)."""
        with self.store._action() as session:
            session.execute(
                update(BatchJob)
                .where(
                    BatchJob.id == job_id,
                    BatchJob.claimed_by == owner,
                    BatchJob.status.in_(("queued", "running")),
                )
                .values(
                    status="running",
                    worker=worker,
                    started_at=at,
                    heartbeat_at=utcnow(),
                    attempts=BatchJob.attempts + 1,
                )
            )

    def set_progress(self, progress: dict[int, float], owner: str) -> None:
        """Fractions done of running jobs (one transaction for all)."""
        if not progress:
            return
        with self.store._action() as session:
            for job_id, fraction in progress.items():
                session.execute(
                    update(BatchJob)
                    .where(
                        BatchJob.id == job_id,
                        BatchJob.claimed_by == owner,
                        BatchJob.status == "running",
                    )
                    .values(progress=float(fraction), heartbeat_at=utcnow())
                )

    def finish(self, job_id: int, owner: str, record: dict[str, Any]) -> None:
        """Record a job's outcome (the small record its task returned) and release it."""
        status = record["status"]
        if status not in ("done", "failed"):
            raise ValueError(f"a finished job is done or failed, not {status!r}")
        with self.store._action() as session:
            job = session.get_one(BatchJob, job_id)
            job.status = status
            job.progress = 1.0 if status == "done" else job.progress
            job.error = record.get("error")
            job.result_path = record.get("result_path") or job.result_path
            job.d50_nm = record.get("d50_nm")
            job.particles_per_ml = record.get("particles_per_ml")
            job.worker = record.get("worker") or job.worker
            job.started_at = record.get("started_at") or job.started_at
            job.finished_at = record.get("finished_at") or utcnow()
            job.elapsed_s = record.get("elapsed_s")
            if job.attempts == 0:
                job.attempts = 1
            job.claimed_by = None
            job.heartbeat_at = None

    def release(self, owner: str) -> int:
        """Give back every unfinished job of ``owner`` (an interrupted batch); returns how many."""
        with self.store._action() as session:
            result = session.execute(
                update(BatchJob)
                .where(BatchJob.claimed_by == owner, BatchJob.status.in_(("queued", "running")))
                .values(status="queued", claimed_by=None, worker=None, progress=0.0)
            )
            return result.rowcount

    def relocate(self, job_id: int, result_path: str) -> None:
        """A done job's files were copied to ``result_path`` (the newest location)."""
        with self.store._action() as session:
            session.get_one(BatchJob, job_id).result_path = result_path

    def link_measurement(self, job_id: int, lot: str, measurement_id: int) -> None:
        """The job's record was entered as ``measurement_id`` of ``lot``."""
        with self.store._action() as session:
            job = session.get_one(BatchJob, job_id)
            job.lot, job.measurement_id = lot, measurement_id
