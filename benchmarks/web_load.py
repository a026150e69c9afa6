"""Load on the web service: 50 concurrent clients for 20 s on loopback, p50/p95 latency, errors.

Part of ``make bench`` (``benchmarks/run.py`` calls :func:`main` last); ``python
benchmarks/web_load.py`` runs it alone and replaces only its section of ``docs/benchmarks.md``.

A real ``exocheck serve`` (one uvicorn process, SQLite) is started on 127.0.0.1 over the store of
``benchmarks/store.py`` (20 complete lots). Each client is an asyncio task with its own HTTP
connection, logged in (5 sessions shared by the 50 clients: each login costs an Argon2 hash), and
requests in turn the lot list page ``/``, a lot page ``/lots/B-010`` (criteria, history), its
control chart (an SVG the page embeds, drawn on the server) and the API's ``GET /api/v1/lots``,
then waits ``THINK_S`` (a person reading the page) before the
next. Three phases of ``DURATION_S`` each:

1. *users*: 50 clients with the think time;
2. *users during an analysis*: the same while a video uploaded through the API is analysed by
   the service's batch job (the job's share of the phase is reported);
3. *saturation*: 50 clients without think time, to show the throughput limit (closed loop:
   latency there is queueing, 50 / throughput).

The target (issue 14) is p95 < 300 ms and no errors in phases 1 and 2 on this 2-core machine,
where the clients run on the same two cores as the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-output"
CLIENTS = 50
SESSIONS = 5
DURATION_S = 20.0
THINK_S = 1.0
TARGET_P95_MS = 300.0
SECTION_TITLE = "## Web service under load"
PATHS = ("/", "/lots/B-010", "/lots/B-010/figures/chart.svg", "/api/v1/lots")
PASSWORD = "bench-password-1"
VIDEOS = 4
TEMPERATURES_C = ("24", "25", "26")


def _prepare(db: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import store as store_bench  # the store benchmark's 20 complete lots
    from exocheck.auth import Accounts
    from exocheck.store import Store

    store_bench._fill(db)
    with Store.open(db) as store:
        accounts = Accounts(store)
        for i in range(SESSIONS):
            accounts.add_user(f"viewer{i}", role="reviewer", password=PASSWORD, by="bench")
        accounts.add_user("uploader", role="analyst", password=PASSWORD, by="bench")
        store.add_lot("B-VIDEO", "EXO-B", by="uploader")


def _videos(folder: Path) -> list[Path]:
    """``VIDEOS`` captures of 100 nm beads, 640x480 and 900 frames each (other seeds): queued
    one after another, their analyses outlast a phase."""
    from exocheck.simulate import make_params, make_population, simulate

    paths = []
    for seed in range(VIDEOS):
        target = folder / f"seed{seed}" / "video.tif"
        if not target.exists():
            beads = make_population(
                name="beads", diameter_nm=100.0, cv=0.03, concentration_per_ml=3e8
            )
            params = make_params(
                populations=[beads],
                frames=900,
                fps=30.0,
                exposure_ms=15.0,
                pixel_size_um=0.166,
                temperature_c=25.0,
                seed=100 + seed,
            )
            simulate(params, target.parent)
        paths.append(target)
    return paths


def _overlap_s(jobs: list[dict], began: float, ended: float) -> float:
    """Seconds of [began, ended] (UTC timestamps) during which an analysis ran."""
    from datetime import datetime

    spans = sorted(
        (
            datetime.fromisoformat(j["started_at"]).timestamp(),
            datetime.fromisoformat(j["finished_at"]).timestamp() if j["finished_at"] else ended,
        )
        for j in jobs
        if j["started_at"]
    )
    covered, cursor = 0.0, began
    for start, end in spans:
        start, end = max(start, cursor), min(end, ended)
        if end > start:
            covered += end - start
            cursor = end
    return covered


async def _phase(base: str, tokens: list[tuple[str, str]], think_s: float) -> dict:
    import httpx2 as httpx

    latencies: dict[str, list[float]] = {p: [] for p in PATHS}
    errors: list[str] = []
    stop = time.monotonic() + DURATION_S

    async def client(i: int) -> None:
        bearer, cookie = tokens[i % len(tokens)]
        async with httpx.AsyncClient(
            base_url=base, timeout=30.0, cookies={"exocheck_session": cookie}
        ) as http:
            step = i
            await asyncio.sleep(think_s * i / CLIENTS)  # users do not all start at once
            while time.monotonic() < stop:
                path = PATHS[step % len(PATHS)]
                step += 1
                headers = {"Authorization": f"Bearer {bearer}"} if path.startswith("/api") else {}
                start = time.perf_counter()
                try:
                    response = await http.get(path, headers=headers)
                    elapsed = time.perf_counter() - start
                    if response.status_code != 200:
                        errors.append(f"{path}: HTTP {response.status_code}")
                    else:
                        latencies[path].append(elapsed)
                except httpx.HTTPError as exc:
                    errors.append(f"{path}: {type(exc).__name__}")
                if think_s:
                    await asyncio.sleep(think_s)

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    wall = time.perf_counter() - began
    load_1min = os.getloadavg()[0]  # the machine is shared: what else ran shows here
    every = sorted(x for v in latencies.values() for x in v)

    def pct(values: list[float], q: float) -> float:
        return 1000 * values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    return {
        "requests": len(every),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "wall_s": wall,
        "throughput_per_s": len(every) / wall,
        "load_1min": load_1min,
        "p50_ms": pct(every, 0.50),
        "p95_ms": pct(every, 0.95),
        "max_ms": 1000 * max(every),
        "by_path": {
            p: {"requests": len(v), "p50_ms": pct(sorted(v), 0.5), "p95_ms": pct(sorted(v), 0.95)}
            for p, v in latencies.items()
        },
    }


def run() -> dict:
    import httpx2 as httpx

    sys.path.insert(0, str(ROOT / "tests" / "web"))
    from web_server import Server  # the tests' helper: exocheck serve on a free loopback port

    work = OUT / "web-load"
    work.mkdir(parents=True, exist_ok=True)
    db = work / "web.db"
    _prepare(db)
    videos = _videos(OUT / "web-load-videos")
    server = Server(f"sqlite:///{db}", work / "data")
    try:
        tokens = []
        for i in range(SESSIONS):
            api = httpx.post(
                f"{server.base}/api/v1/login",
                timeout=30,
                json={"username": f"viewer{i}", "password": PASSWORD},
            )
            page = httpx.get(f"{server.base}/login")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            login = httpx.post(
                f"{server.base}/login",
                cookies=page.cookies,
                data={"username": f"viewer{i}", "password": PASSWORD, "csrf_token": token},
            )
            cookie = (
                login.history[0].cookies["exocheck_session"]
                if login.history
                else login.cookies["exocheck_session"]
            )
            tokens.append((api.json()["token"], cookie))
        for path in PATHS[:3]:  # the first views build what is kept until the data change
            httpx.get(server.base + path, cookies={"exocheck_session": tokens[0][1]})
        results = {
            "clients": CLIENTS,
            "sessions": SESSIONS,
            "duration_s": DURATION_S,
            "think_s": THINK_S,
            "target_p95_ms": TARGET_P95_MS,
        }
        results["users"] = asyncio.run(_phase(server.base, tokens, THINK_S))

        uploader = httpx.post(
            f"{server.base}/api/v1/login",
            timeout=30,
            json={"username": "uploader", "password": PASSWORD},
        ).json()["token"]
        auth = {"Authorization": f"Bearer {uploader}"}
        jobs = []
        for video in videos:  # each capture at three temperatures: three analyses
            for temperature_c in TEMPERATURES_C:
                with open(video, "rb") as fh:
                    response = httpx.post(
                        f"{server.base}/api/v1/lots/B-VIDEO/measurements",
                        headers=auth,
                        files={"file": (f"{video.parent.name}.tif", fh)},
                        timeout=120,
                        data={
                            "fps": "30",
                            "pixel_size_um": "0.166",
                            "temperature_c": temperature_c,
                        },
                    )
                jobs.append(response.json()["job"])

        def job(i: int) -> dict:
            return httpx.get(f"{server.base}/api/v1/jobs/{i}", headers=auth, timeout=30).json()

        deadline = time.monotonic() + 120
        while job(jobs[0])["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.5)
        began = time.time()
        results["during_analysis"] = asyncio.run(_phase(server.base, tokens, THINK_S))
        ended = time.time()
        states = [job(i) for i in jobs]
        while (
            any(j["status"] in ("queued", "running") for j in states)
            and time.monotonic() < deadline + 600
        ):
            time.sleep(1)
            states = [job(i) for i in jobs]
        results["during_analysis"] |= {
            "jobs": [j["status"] for j in states],
            "analysis_overlap_s": _overlap_s(states, began, ended),
        }
        results["saturation"] = asyncio.run(_phase(server.base, tokens, 0.0))
    finally:
        server.stop()
    return results


def section(r: dict) -> list[str]:
    """The Markdown section of ``docs/benchmarks.md``."""
    lines = [
        SECTION_TITLE,
        "",
        "Command: `make bench` (or `python benchmarks/web_load.py` for this section alone). "
        f"`exocheck serve` (one uvicorn process, SQLite) on 127.0.0.1 over a store of 20 "
        f"complete lots; {r['clients']} concurrent asyncio clients on the same 2 cores, "
        f"{r['duration_s']:g} s per phase, each client requesting in turn the lot list page, "
        "a lot page (criteria, history), the control chart it shows (SVG drawn on the server) "
        "and `GET /api/v1/lots`; "
        f"{r['sessions']} logged-in sessions shared by the clients.",
        "",
        "| phase | think time | requests | errors | throughput (/s) | p50 (ms) | p95 (ms) | "
        "max (ms) | load (1 min) | target p95 < 300 ms, no errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, name, think in (
        ("users", "users", r["think_s"]),
        ("during_analysis", "users while videos are analysed", r["think_s"]),
        ("saturation", "saturation (closed loop)", 0.0),
    ):
        p = r[key]
        target = (
            "—"
            if key == "saturation"
            else ("met" if p["p95_ms"] < r["target_p95_ms"] and p["errors"] == 0 else "**not met**")
        )
        lines.append(
            f"| {name} | {think:g} s | {p['requests']} | {p['errors']} | "
            f"{p['throughput_per_s']:.0f} | {p['p50_ms']:.0f} | {p['p95_ms']:.0f} | "
            f"{p['max_ms']:.0f} | {p['load_1min']:.1f} | {target} |"
        )
    lines += [
        "",
        "p95 by request (ms):",
        "",
        "| phase | " + " | ".join(f"`{p}`" for p in PATHS) + " |",
        "|---|" + "---:|" * len(PATHS),
    ]
    for key in ("users", "during_analysis", "saturation"):
        lines.append(
            f"| {key.replace('_', ' ')} | "
            + " | ".join(f"{r[key]['by_path'][p]['p95_ms']:.0f}" for p in PATHS)
            + " |"
        )
    d = r["during_analysis"]
    ended = ", ".join(f"{n} {state}" for state, n in Counter(d["jobs"]).items())
    lines += [
        "",
        f"During the second phase {len(d['jobs'])} analyses uploaded through the API (4 captures "
        "of 900 frames, 640x480, each at three temperatures) were run "
        "one after another by the service's batch jobs (a Dask worker process beside the server, "
        f"at lower CPU priority): analyses ran for {d['analysis_overlap_s']:.0f} s of the "
        f"{r['duration_s']:g} s; the jobs ended: {ended}. The saturation phase has no "
        "think time: with 50 clients always waiting, latency is queueing (50 / throughput) and "
        "shows the limit of one server process on two shared cores, not what a user sees. "
        "*load* is the machine's 1-minute load average at the end of the phase: 2 means both "
        "cores busy; more means other work on the machine competed with the server and clients.",
        "",
    ]
    return lines


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_report import splice_section

    OUT.mkdir(exist_ok=True)
    results = run()
    (OUT / "web-load.json").write_text(json.dumps(results, indent=1))
    splice_section(ROOT / "docs" / "benchmarks.md", SECTION_TITLE, section(results))
    for key in ("users", "during_analysis", "saturation"):
        p = results[key]
        print(
            f"[bench] web {key}: p50 {p['p50_ms']:.0f} ms, p95 {p['p95_ms']:.0f} ms, "
            f"{p['errors']} errors, {p['throughput_per_s']:.0f}/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
