"""The cluster path: a ``dask scheduler`` and two ``dask worker`` processes on loopback, started
as separate programs, run ``exocheck batch --scheduler``. One worker is killed (SIGKILL) while it
analyses a sample, the client of a later batch is killed too; each batch still ends with every
sample's files once, and nothing missing."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from batch_support import DASK, EXOCHECK, SETTINGS, comparable, exocheck, one_error_line

from exocheck.nta.outputs import RESULT_FILES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(scheduler address, {worker address: process}) of a scheduler and two workers."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask-logs")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = []

    # one BLAS thread per worker, as dask's nanny sets it (these workers run without one)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }

    def start(name: str, *args: str) -> subprocess.Popen:
        log = (logs / f"{name}.log").open("w")
        process = subprocess.Popen(
            [str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        processes.append(process)
        return process

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port),
              "--dashboard-address", "127.0.0.1:0")  # fmt: skip
        workers = {}
        for i in (1, 2):
            worker_port = _free_port()
            workers[f"tcp://127.0.0.1:{worker_port}"] = start(
                f"worker{i}", "worker", address, "--nthreads", "1", "--no-nanny",
                "--host", "127.0.0.1", "--worker-port", str(worker_port), "--name", f"w{i}",
                "--no-dashboard",
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, (logs / "scheduler.log").read_text()
            time.sleep(0.2)
        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in processes:
            _stop(process)


def _jobs(db: Path) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(
            "SELECT sample, status, worker, attempts, claimed_by FROM batch_jobs ORDER BY sample"
        ).fetchall()


def _wait_for_running(db: Path, process: subprocess.Popen) -> tuple:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if db.exists():
            with contextlib.suppress(sqlite3.OperationalError):
                running = [row for row in _jobs(db) if row[1] == "running" and row[2]]
                if running:
                    return running[0]
        time.sleep(0.05)
    raise AssertionError("no job was seen running: the batch ended or never started")


def _assert_each_sample_once(out: Path, names: list[str]) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(RESULT_FILES), name


def test_worker_killed_mid_batch(cluster, tmp_path, videos):
    address, workers = cluster
    out, db = tmp_path / "out", tmp_path / "jobs.db"
    process = subprocess.Popen(
        [str(EXOCHECK), "batch", *map(str, videos), "--scheduler", address, "--out", str(out),
         "--db", str(db), "--create", *SETTINGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        sample, _, worker, _, _ = _wait_for_running(db, process)
        workers[worker].send_signal(signal.SIGKILL)  # the worker analysing `sample`
        workers[worker].wait(timeout=10)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        _stop(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stdout + stderr
    names = [v.stem for v in videos]
    _assert_each_sample_once(out, names)
    rows = {row[0]: row for row in _jobs(db)}
    assert sorted(rows) == sorted(names)  # one job per sample: no duplicate, none missing
    assert all(row[1] == "done" and row[4] is None for row in rows.values()), rows
    survivor = next(a for a in workers if a != worker)
    assert rows[sample][2] == survivor and rows[sample][3] == 2  # started again elsewhere
    assert all(row[2] == survivor for name, row in rows.items() if row[3] == 2)
    # the rescheduled sample's result is the serial analysis's
    video = next(v for v in videos if v.stem == sample)
    serial = tmp_path / "serial"
    done = exocheck("analyze", video, *SETTINGS, "--out", serial)
    assert done.code == 0, done.stderr
    assert comparable(out / sample / "result.json") == comparable(serial / "result.json")


def test_killed_client_jobs_are_requeued(cluster, tmp_path, videos):
    address, _ = cluster
    out, db = tmp_path / "out", tmp_path / "jobs.db"
    command = [str(EXOCHECK), "batch", *map(str, videos[:3]), "--scheduler", address,
               "--out", str(out), "--db", str(db), "--create", *SETTINGS, "--bootstrap", "5"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_running(db, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        _stop(process)
    assert any(row[1] in ("queued", "running") and row[4] for row in _jobs(db))
    again = exocheck(*command[1:])
    assert again.code == 0, again.stderr
    assert "requeued" in again.stderr
    _assert_each_sample_once(out, [v.stem for v in videos[:3]])
    assert [(row[1], row[4]) for row in _jobs(db)] == [("done", None)] * 3


def test_unreachable_scheduler_answered_within_10_s(exo, tmp_path, videos):
    closed = _free_port()
    began = time.monotonic()
    outcome = exo("batch", videos[0], "--scheduler", f"tcp://127.0.0.1:{closed}",
                  "--out", tmp_path / "out", "--db", tmp_path / "jobs.db", "--create")  # fmt: skip
    assert time.monotonic() - began < 10.0
    one_error_line(outcome, f"cannot reach the Dask scheduler at tcp://127.0.0.1:{closed}")
    assert not (tmp_path / "out").exists()
