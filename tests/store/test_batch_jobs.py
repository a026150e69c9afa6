"""The batch job table on SQLite and PostgreSQL: identity by a unique constraint, claims,
stale jobs requeued, interrupted batches giving their jobs back."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from exocheck.store import Store
from exocheck.store.jobs import BatchJob, JobTable, owner_token
from exocheck.store.models import utcnow

INPUTS = [{"name": "a.tif", "path": "/data/a.tif", "sha256": "ab" * 32}]


def _job(jobs: JobTable, sample: str = "A", settings_sha: str = "11" * 32, version: str = "1.0"):
    return jobs.get_or_create(sample, INPUTS, "cd" * 32, {"sample": sample}, settings_sha, version)


def _dead_owner() -> str:
    """The owner token of a process that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return owner_token("x").replace(f":{os.getpid()}:", f":{child.stdout.strip()}:")


def test_same_inputs_settings_version_is_one_job(db_url):
    with Store.open(db_url) as store:
        jobs = JobTable(store)
        first = _job(jobs)
        assert _job(jobs).id == first.id
        assert _job(jobs, settings_sha="22" * 32).id != first.id
        assert _job(jobs, version="1.1").id != first.id
        # the database itself refuses a second row (not a check in Python)
        row = {"sample": "A", "inputs": INPUTS, "inputs_sha256": "cd" * 32,
               "settings": {}, "settings_sha256": "11" * 32, "exocheck_version": "1.0",
               "status": "queued", "progress": 0.0, "attempts": 0, "created_at": utcnow()}  # fmt: skip
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(insert(BatchJob).values(**row))
        with pytest.raises(IntegrityError), store.engine.begin() as conn:
            conn.execute(insert(BatchJob).values(**{**row, "settings_sha256": "33" * 32,
                                                    "status": "paused"}))  # fmt: skip
        assert len(jobs.list()) == 3


def test_claims_are_exclusive_and_finishing_releases(db_url):
    with Store.open(db_url) as store:
        jobs = JobTable(store)
        job = _job(jobs)
        me, other = owner_token("me"), owner_token("other")
        assert jobs.claim(job.id, me)
        assert not jobs.claim(job.id, other)
        jobs.started(job.id, me, "tcp://10.0.0.2:4000", utcnow())
        jobs.set_progress({job.id: 0.5}, me)
        seen = jobs.get(job.id)
        assert (seen.status, seen.progress, seen.worker, seen.attempts) == (
            "running", 0.5, "tcp://10.0.0.2:4000", 1,
        )  # fmt: skip
        jobs.finish(job.id, me, {"status": "done", "result_path": "/out/A", "d50_nm": 101.0,
                                 "particles_per_ml": 2e9, "elapsed_s": 1.5})  # fmt: skip
        done = jobs.get(job.id)
        assert (done.status, done.progress, done.claimed_by, done.d50_nm) == (
            "done",
            1.0,
            None,
            101.0,
        )
        assert not jobs.claim(job.id, other)  # done: not taken again ...
        assert jobs.claim(job.id, other, rerun_done=True)  # ... unless asked to rerun


def test_stale_jobs_are_requeued_live_ones_kept(db_url):
    with Store.open(db_url) as store:
        jobs = JobTable(store)
        dead, live, silent = _job(jobs, "A"), _job(jobs, "B", "22" * 32), _job(jobs, "C", "33" * 32)
        gone = _dead_owner()
        assert jobs.claim(dead.id, gone)
        jobs.started(dead.id, gone, "w", utcnow())
        assert jobs.claim(live.id, owner_token("live"))
        assert jobs.claim(silent.id, "elsewhere:123:abc")  # another host: judged by heartbeat
        assert jobs.requeue_stale(stale_after_s=120) == [jobs.get(dead.id)]
        assert jobs.get(dead.id).status == "queued" and jobs.get(dead.id).claimed_by is None
        with store.engine.begin() as conn:
            conn.execute(update(BatchJob).where(BatchJob.id == silent.id)
                         .values(heartbeat_at=utcnow() - timedelta(seconds=300)))  # fmt: skip
        assert [j.sample for j in jobs.requeue_stale(stale_after_s=120)] == ["C"]
        assert jobs.get(live.id).claimed_by == owner_token("live")


def test_an_interrupted_batch_gives_its_jobs_back(db_url):
    with Store.open(db_url) as store:
        jobs = JobTable(store)
        a, b = _job(jobs, "A"), _job(jobs, "B", "22" * 32)
        me = owner_token("me")
        assert jobs.claim(a.id, me) and jobs.claim(b.id, me)
        jobs.started(a.id, me, "w", utcnow())
        assert jobs.release(me) == 2
        assert {(j.status, j.claimed_by) for j in jobs.list()} == {("queued", None)}
