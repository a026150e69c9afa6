"""``make bench``: exocheck against trackpy on the same videos, in one run.

1. Simulates (once; cached under ``bench-output/videos``) a standard 60 s capture: 640×480, 1500
   frames at 30 fps, 15 ms exposure, 100 nm polystyrene beads (CV 3 %) at 3e8 per mL, 25 °C.
2. Times, each as its own whole process (interpreter start-up and imports included), with peak
   memory: ``exocheck analyze`` and the trackpy pipeline (``benchmarks/trackpy_pipeline.py``) with
   ``tp.batch`` in one process and in two; the faster trackpy run is the peer's figure.
3. Measures exocheck's peak memory on a 5× longer video (7500 frames: the 1500-frame video written
   five times over into one TIFF), to show that memory does not grow with video length.
4. Runs both tools on the real bright-field recording ``tests/data/bulk-water.mov`` (1 µm beads).
5. Profiles ``exocheck analyze`` on the standard video (cProfile; stage totals).

Writes ``docs/benchmarks.md`` and ``bench-output/results.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import pstats
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-output"
VIDEOS = OUT / "videos"
BIN = Path(sys.executable).parent
EXOCHECK = str(BIN / "exocheck")
PYTHON = sys.executable
TRACKPY = str(ROOT / "benchmarks" / "trackpy_pipeline.py")
BULK_WATER = ROOT / "tests" / "data" / "bulk-water.mov"

# the standard capture (exocheck simulate's options)
STANDARD = {
    "frames": 1500,
    "fps": 30.0,
    "exposure-ms": 15.0,
    "diameter-nm": 100.0,
    "cv": 0.03,
    "concentration-per-ml": 3e8,
    "refractive-index": 1.59,
    "pixel-size-um": 0.166,
    "temperature-c": 25.0,
    "seed": 1,
}
REPEATS_LONG = 5
# trackpy's settings for the simulated video (reasons in trackpy_pipeline.py's docstring)
TRACKPY_SIM = [
    "--diameter", "9", "--minmass", "100", "--search-range", "12", "--memory", "3",
    "--min-frames", "10", "--fit-lags", "4",
    "--mpp", str(STANDARD["pixel-size-um"]), "--fps", str(STANDARD["fps"]),
    "--temperature-c", str(STANDARD["temperature-c"]),
]  # fmt: skip
# bulk-water.mov: the trackpy walkthrough's settings for this very recording
BULK_PIXEL_UM = 100.0 / 285.0
BULK_TEMPERATURE_C = 22.0
TRACKPY_BULK = [
    "--diameter", "11", "--minmass", "20", "--invert", "--search-range", "5", "--memory", "3",
    "--min-frames", "25", "--min-track-mass", "50", "--max-size", "2.6", "--max-ecc", "0.3",
    "--fit-lags", "4", "--mpp", f"{BULK_PIXEL_UM:.6f}", "--fps", "24",
    "--temperature-c", str(BULK_TEMPERATURE_C),
]  # fmt: skip


@dataclass
class Run:
    """One whole-process run: wall clock, CPU and memory."""

    name: str
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float  # ru_maxrss of the process (what `/usr/bin/time -v` reports)
    peak_private_mb: float  # peak anonymous memory summed over the process and its children
    peak_file_mb: float  # peak file-backed resident pages (memory-mapped input), same tree
    returncode: int


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return pids


def _rss_kb(pid: int) -> tuple[int, int]:
    anon = file = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                elif line.startswith("RssFile:"):
                    file = int(line.split()[1])
    except OSError:
        pass
    return anon, file


def measure(name: str, cmd: list[str], log: Path) -> Run:
    """Run ``cmd`` as a separate process; wall clock, CPU times and peak memory."""
    print(f"[bench] {name}: {' '.join(cmd)}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = {"anon": 0, "file": 0}
    done = threading.Event()
    with open(log, "w") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)

        def sample() -> None:
            while not done.is_set():
                totals = [_rss_kb(p) for p in _tree(proc.pid)]
                peak["anon"] = max(peak["anon"], sum(a for a, _ in totals))
                peak["file"] = max(peak["file"], sum(f for _, f in totals))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    run = Run(
        name=name,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024.0,
        peak_private_mb=peak["anon"] / 1024.0,
        peak_file_mb=peak["file"] / 1024.0,
        returncode=proc.returncode,
    )
    print(
        f"[bench]   {wall:.1f} s, peak RSS {run.peak_rss_mb:.0f} MB "
        f"(private {run.peak_private_mb:.0f} MB), exit {proc.returncode}",
        flush=True,
    )
    if proc.returncode != 0:
        sys.exit(f"{name} failed; see {log}")
    return run


def clear_kernel_cache() -> int:
    """Remove numba's cached machine code of exocheck's kernels (as after a fresh install)."""
    import exocheck.nta

    removed = 0
    for cached in Path(exocheck.nta.__file__).parent.glob("__pycache__/_kernels.*.nb[ic]"):
        cached.unlink()
        removed += 1
    return removed


def standard_video() -> Path:
    """The simulated standard capture, made once and kept while its settings do not change."""
    folder = VIDEOS / "beads100-1500"
    stamp = folder / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == STANDARD:
        return folder
    cmd = [EXOCHECK, "simulate", "--out", str(folder)]
    for key, value in STANDARD.items():
        cmd += [f"--{key}", str(value)]
    measure("simulate standard video", cmd, OUT / "logs" / "simulate.log")
    stamp.write_text(json.dumps(STANDARD))
    return folder


def long_video(standard: Path) -> Path:
    """The standard video written ``REPEATS_LONG`` times over into one TIFF (for memory only).

    Written by a child process: the benchmark's own process stays small, because a child started
    from it inherits its memory high-water mark (Linux keeps ``maxrss`` across fork and exec).
    """
    path = VIDEOS / f"beads100-{STANDARD['frames'] * REPEATS_LONG}.tif"
    source = standard / "video.tif"
    if path.is_file() and path.stat().st_mtime > source.stat().st_mtime:
        return path
    print(f"[bench] writing {path.name} ({REPEATS_LONG}× the standard video)", flush=True)
    subprocess.run([PYTHON, __file__, "--write-long", str(source), str(path)], check=True)
    return path


def _write_long(source: Path, path: Path) -> None:
    from exocheck.io.video import open_video, write_tiff

    with open_video(source) as video:
        meta = video.meta

        def frames():
            for _ in range(REPEATS_LONG):
                for _, chunk in video.iter_chunks(64):
                    yield chunk

        write_tiff(
            path,
            frames(),
            n_frames=meta.n_frames * REPEATS_LONG,
            fps=meta.fps,
            pixel_size_um=meta.pixel_size_um,
            exposure_ms=meta.exposure_ms,
        )


def truth_quantiles(truth_json: Path) -> dict[str, float]:
    """D10/D50/D90 of the particles the simulator made visible in the field."""
    truth = json.loads(truth_json.read_text())
    d = np.array([p["diameter_nm"] for p in truth["particles"]])
    d10, d50, d90 = np.percentile(d, [10, 50, 90])
    return {"d10_nm": d10, "d50_nm": d50, "d90_nm": d90, "particles": int(d.size)}


def exocheck_result(folder: Path) -> dict[str, float]:
    r = json.loads((folder / "result.json").read_text())
    size = r["size"]
    return {
        "d10_nm": size["d10_nm"],
        "d50_nm": size["d50_nm"],
        "d90_nm": size["d90_nm"],
        "tracks": r["tracks"]["count"],
    }


def profile_exocheck(video: Path) -> list[tuple[str, float]]:
    """Where ``exocheck analyze`` spends its time: cumulative seconds of its main stages."""
    prof = OUT / "profile" / "analyze.prof"
    prof.parent.mkdir(parents=True, exist_ok=True)
    cmd = [PYTHON, "-m", "cProfile", "-o", str(prof), EXOCHECK, "analyze", str(video)]
    cmd += ["--out", str(OUT / "profile" / "result")]
    measure("profile exocheck analyze (cProfile)", cmd, OUT / "logs" / "profile.log")
    stats = pstats.Stats(str(prof))
    stages = {
        "analyze command (after start-up and imports)": ("nta_cmds.py", "analyze_cmd"),
        "start-up: imports of the analysis modules": ("analyze.py", "<module>"),
        "one video: waiting for detection (own threads, from start-up), linking, statistics": (
            "analyze.py",
            "analyze_video",
        ),
        "linking": ("link.py", "link"),
        "mislink splitting": ("link.py", "split_at_jumps"),
        "drift": ("drift.py", "estimate_drift"),
        "per-track statistics": ("diffusion.py", "track_statistics"),
        "size distribution (EM + bootstrap)": ("sizing.py", "size_distribution"),
        "concentration": ("concentration.py", "concentration_per_ml"),
        "plot": ("plots.py", "size_distribution_png"),
    }
    out = [("whole process under the profiler", stats.total_tt)]
    for label, (file, func) in stages.items():
        total = sum(v[3] for k, v in stats.stats.items() if k[0].endswith(file) and k[2] == func)
        out.append((label, total))
    return out


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    from importlib.metadata import version

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram_gib": f"{mem_kb / 1024**2:.1f}",
        "python": platform.python_version(),
        "exocheck": version("exocheck"),
        "trackpy": version("trackpy"),
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    logs = OUT / "logs"
    info = machine()
    standard = standard_video()
    video = standard / "video.tif"
    truth = truth_quantiles(standard / "truth.json")

    runs: dict[str, Run] = {}
    sizes: dict[str, dict] = {"truth": truth}
    ex_out = OUT / "exocheck-1500"
    ex_cmd = [EXOCHECK, "analyze", str(video), "--out", str(ex_out)]
    # First run after installation: the compiled kernels are not cached yet.
    cleared = clear_kernel_cache()
    runs["exocheck-first"] = measure(
        f"exocheck analyze, first run ({cleared} cached kernel files removed)",
        ex_cmd,
        logs / "ex-first.log",
    )
    warm = [measure(f"exocheck analyze, run {i + 2}", ex_cmd, logs / "ex.log") for i in range(3)]
    runs["exocheck"] = sorted(warm, key=lambda r: r.wall_s)[1]  # the median of three
    sizes["exocheck"] = exocheck_result(ex_out)
    for processes in (1, 2):
        key = f"trackpy-p{processes}"
        summary = OUT / f"{key}.json"
        cmd = [PYTHON, TRACKPY, str(video), "--out", str(summary), *TRACKPY_SIM]
        runs[key] = measure(
            f"trackpy pipeline, tp.batch processes={processes}",
            [*cmd, "--processes", str(processes)],
            logs / f"{key}.log",
        )
        sizes[key] = json.loads(summary.read_text())
    peer = min(("trackpy-p1", "trackpy-p2"), key=lambda k: runs[k].wall_s)
    ratio = runs[peer].wall_s / runs["exocheck"].wall_s

    long = long_video(standard)
    runs["exocheck-long"] = measure(
        f"exocheck analyze, {REPEATS_LONG}× longer video",
        [EXOCHECK, "analyze", str(long), "--out", str(OUT / "exocheck-long")],
        logs / "ex-long.log",
    )
    sizes["exocheck-long"] = exocheck_result(OUT / "exocheck-long")

    bulk_out = OUT / "exocheck-bulk-water"
    cmd = [EXOCHECK, "analyze", str(BULK_WATER), "--invert", "--out", str(bulk_out)]
    cmd += ["--pixel-size-um", f"{BULK_PIXEL_UM:.4f}", "--temperature-c", str(BULK_TEMPERATURE_C)]
    runs["exocheck-bulk"] = measure("exocheck analyze bulk-water.mov", cmd, logs / "ex-bulk.log")
    sizes["exocheck-bulk"] = exocheck_result(bulk_out)
    summary = OUT / "trackpy-bulk-water.json"
    runs["trackpy-bulk"] = measure(
        "trackpy pipeline bulk-water.mov",
        [PYTHON, TRACKPY, str(BULK_WATER), "--out", str(summary), *TRACKPY_BULK],
        logs / "tp-bulk.log",
    )
    sizes["trackpy-bulk"] = json.loads(summary.read_text())

    profile = profile_exocheck(video)
    import batch as batch_bench  # sibling module: exocheck batch with 1 and 2 workers

    batch = batch_bench.run(video, measure)
    import store as store_bench  # sibling module: start-up of the store commands

    store = store_bench.run(measure)
    import dense as dense_bench  # sibling module: the dense EV capture and the solver alone

    dense = dense_bench.run(measure, EXOCHECK, PYTHON, TRACKPY, OUT)
    results = {
        "machine": info,
        "standard_video": STANDARD,
        "runs": {k: asdict(v) for k, v in runs.items()},
        "sizes": sizes,
        "peer_run": peer,
        "speed_ratio": ratio,
        "profile_s": profile,
        "batch": batch,
        "store": store,
        "dense": dense,
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    from bench_report import write_report  # sibling module (see sys.path below)

    write_report(results, ROOT / "docs" / "benchmarks.md")
    import web_load  # sibling module: the web service under load (writes its own section)

    web_load.main()
    from bench_report import splice_section

    splice_section(ROOT / "docs" / "benchmarks.md", dense_bench.TITLE, dense_bench.section(dense))
    print(f"[bench] speed ratio {ratio:.1f}× ({peer}); wrote docs/benchmarks.md", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--write-long":
        _write_long(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        main()
