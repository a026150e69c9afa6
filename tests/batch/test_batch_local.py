"""``exocheck batch`` on a local Dask cluster: the same results as ``exocheck analyze``, one
failed job per corrupt video, runs that resume, and an interrupted batch that gives its jobs back.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest
from batch_support import EXOCHECK, SETTINGS, comparable, exocheck

from exocheck.batch import run_batch, samples_from_videos
from exocheck.errors import StoreError
from exocheck.nta.analyze import AnalysisSettings, Conditions
from exocheck.nta.sizing import SizingSettings

CONDITIONS = Conditions(fps=30.0, pixel_size_um=0.166, exposure_ms=15.0)
ANALYSIS = AnalysisSettings(sizing=SizingSettings(n_bootstrap=4))


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR,
    )  # fmt: skip
    with Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()


def _jobs(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT sample, status, attempts, error, claimed_by FROM batch_jobs ORDER BY sample"
        ).fetchall()


def test_batch_equals_serial_analyze_and_corrupt_video_fails_alone(
    tmp_path, client, videos, corrupt
):
    out, db = tmp_path / "out", tmp_path / "jobs.db"
    samples = samples_from_videos([videos[0], corrupt, videos[1]], CONDITIONS)
    absent = samples_from_videos([tmp_path / "absent.tif"], CONDITIONS)
    result = run_batch([*samples, *absent], out, settings=ANALYSIS, client=client, db=str(db))
    status = {o.sample: (o.status, o.error) for o in result.outcomes}
    assert status["s1"] == ("done", None) and status["s2"] == ("done", None)
    assert status["cut"][0] == "failed"
    assert "cut.tif" in status["cut"][1] and "\n" not in status["cut"][1]
    assert status["absent"] == ("failed", f"{tmp_path / 'absent.tif'}: No such file or directory")
    assert [o.sample for o in result.failed] == ["cut", "absent"]
    assert sorted(p.name for p in out.iterdir()) == ["s1", "s2"]  # nothing for the failed job
    # serial `exocheck analyze` on the same videos, now, with the same settings
    for name, video in (("s1", videos[0]), ("s2", videos[1])):
        serial = tmp_path / f"serial-{name}"
        done = exocheck("analyze", video, *SETTINGS, "--out", serial)
        assert done.code == 0, done.stderr
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(
            p.name for p in serial.iterdir()
        )
        assert comparable(out / name / "result.json") == comparable(serial / "result.json")
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / name / "tracks.parquet"),
            pd.read_parquet(serial / "tracks.parquet"),
        )
    assert _jobs(db) == [
        ("cut", "failed", 1, status["cut"][1], None),
        ("s1", "done", 1, None, None),
        ("s2", "done", 1, None, None),
    ]
    # the same batch again: nothing done is analysed again; the failed job is tried again
    stamp = (out / "s1" / "result.json").stat().st_mtime_ns
    again = run_batch(samples, out, settings=ANALYSIS, client=client, db=str(db))
    assert [(o.sample, o.status, o.reused) for o in again.outcomes] == [
        ("s1", "done", True), ("cut", "failed", False), ("s2", "done", True),
    ]  # fmt: skip
    assert (out / "s1" / "result.json").stat().st_mtime_ns == stamp
    assert [row[:3] for row in _jobs(db)] == [
        ("cut", "failed", 2),
        ("s1", "done", 1),
        ("s2", "done", 1),
    ]
    # into another folder: the files are copied, not recomputed
    other = run_batch(samples[:1], tmp_path / "other", settings=ANALYSIS, client=client, db=str(db))
    assert other.outcomes[0].reused
    assert (tmp_path / "other" / "s1" / "result.json").read_bytes() == (
        out / "s1" / "result.json"
    ).read_bytes()
    # other settings are another job
    five = AnalysisSettings(sizing=SizingSettings(n_bootstrap=5))
    changed = run_batch(samples[:1], tmp_path / "b5", settings=five, client=client, db=str(db))
    assert changed.outcomes[0].status == "done" and not changed.outcomes[0].reused
    assert len(_jobs(db)) == 4


def test_cli_manifest_replicates_and_failed_sample_exit_2(tmp_path, videos, corrupt):
    manifest = tmp_path / "plate.csv"
    manifest.write_text(
        "sample,video,fps,pixel_size_um,exposure_ms\n"
        f"AB,{videos[2]},30,0.166,15\n"
        f"AB,{videos[3]},30,0.166,15\n"
        f"broken,{corrupt},30,0.166,15\n"
    )
    out, db = tmp_path / "out", tmp_path / "jobs.db"
    batch = exocheck("batch", "--manifest", manifest, "--out", out, "--db", db, "--create",
                     "--workers", "2", "--bootstrap", "4")  # fmt: skip
    assert batch.code == 2, batch.stderr
    assert "Traceback" not in batch.stdout + batch.stderr
    errors = [line for line in batch.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: sample broken: "), batch.stderr
    assert "dashboard: http://" in batch.stderr
    rows = {line.split("│")[1].strip(): line for line in batch.stdout.splitlines() if "│" in line}
    assert "done" in rows["AB"] and "failed" in rows["broken"]
    serial = tmp_path / "serial"
    done = exocheck("analyze", videos[2], videos[3], *SETTINGS, "--sample", "AB", "--out", serial)
    assert done.code == 0, done.stderr
    assert comparable(out / "AB" / "result.json") == comparable(serial / "result.json")


def test_interrupted_batch_leaves_no_job_running(tmp_path, videos):
    out, db = tmp_path / "out", tmp_path / "jobs.db"
    command = [str(EXOCHECK), "batch", *map(str, videos), "--out", str(out), "--db", str(db),
               "--create", "--workers", "1", *SETTINGS]  # fmt: skip
    # a test run started in the background of a shell inherits SIGINT ignored, and so would the
    # batch: give it the default disposition, as a terminal's Ctrl-C finds it
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if db.exists():
                try:
                    states = [row[1] for row in _jobs(db)]
                    # interrupt while one job runs and another still waits: a job that ends
                    # between this look and the signal would otherwise leave nothing to stop
                    if "running" in states and "queued" in states:
                        break
                except sqlite3.OperationalError:  # table not there yet, or locked
                    pass
            time.sleep(0.1)
        assert process.poll() is None, "the batch ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "run again to resume" in stderr
    rows = _jobs(db)
    assert rows and all(status in ("queued", "done") for _, status, *_ in rows), rows
    assert all(claimed is None for *_, claimed in rows)
    # the same command again finishes the work: each sample once
    rest = exocheck(*command[1:])
    assert rest.code == 0, rest.stderr
    assert [row[1] for row in _jobs(db)] == ["done"] * len(videos)
    assert sorted(p.name for p in out.iterdir()) == [v.stem for v in videos]


def test_results_entered_in_a_lot_once(tmp_path, client, videos):
    from exocheck.store import Store

    db = f"sqlite:///{tmp_path / 'qc.db'}"
    with Store.open(db) as store:
        store.add_product("EXO-1", by="ana")
        store.add_lot("L1", "EXO-1", by="ana")
    samples = samples_from_videos([videos[0]], CONDITIONS)
    for _ in range(2):  # the second run finds the job done and the record already entered
        result = run_batch(
            samples, tmp_path / "out", settings=ANALYSIS, client=client, db=db, lot="L1", by="ana"
        )
        assert [o.status for o in result.outcomes] == ["done"]
    with Store.open(db) as store:
        entered = [e for e in store.history("L1") if e["entity"] == "measurement"]
    assert len(entered) == 1 and entered[0]["actor"] == "ana", entered
    with pytest.raises(StoreError, match="unknown lot 'L9'"):
        run_batch(samples, tmp_path / "out", settings=ANALYSIS, client=client, db=db, lot="L9",
                  by="ana")  # fmt: skip


_WATCHED: set[str] = set()
_OPENED_BY_CLIENT: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], str | bytes | os.PathLike):
        name = os.fsdecode(args[0])
        if name in _WATCHED:
            _OPENED_BY_CLIENT.append(name)


def test_client_sends_paths_and_workers_hash_their_inputs(tmp_path, client, videos):
    """The batch's own process never opens a video (every file open is audited); the workers
    hash them, and the job table records the same SHA-256 the analysis records."""
    import hashlib
    import json

    if not getattr(test_client_sends_paths_and_workers_hash_their_inputs, "hooked", False):
        sys.addaudithook(_audit)  # stays for the process; idle while nothing is watched
        test_client_sends_paths_and_workers_hash_their_inputs.hooked = True
    samples = samples_from_videos(videos[:2], CONDITIONS)
    _WATCHED.update(str(v.absolute()) for v in videos[:2])
    try:
        result = run_batch(
            samples, tmp_path / "out", settings=ANALYSIS, client=client, db=str(tmp_path / "j.db")
        )
    finally:
        _WATCHED.clear()
    assert [o.status for o in result.outcomes] == ["done", "done"]
    assert _OPENED_BY_CLIENT == []
    pids = {o.sample: o.worker for o in result.outcomes}
    assert all(w and w.startswith("tcp://") for w in pids.values())  # run by worker processes
    with sqlite3.connect(tmp_path / "j.db") as conn:
        inputs = [json.loads(r[0]) for r in conn.execute("SELECT inputs FROM batch_jobs")]
    recorded = {i["name"]: i["sha256"] for job in inputs for i in job}
    assert recorded == {v.name: hashlib.sha256(v.read_bytes()).hexdigest() for v in videos[:2]}
    for sample in ("s1", "s2"):
        provenance = json.loads((tmp_path / "out" / sample / "result.json").read_text())
        assert provenance["provenance"]["inputs"] == {f"{sample}.tif": recorded[f"{sample}.tif"]}
