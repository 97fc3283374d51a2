"""Replicas against one log: images/s and p50/p95 latency for 1 and 3 replicas, on SQLite and on PostgreSQL.

    flock /tmp/transferlab-bench.lock python bench/serve_replicas.py [--requests 192] [--concurrency 16]

Trains a small run with the default backbone (efficientnet_lite0, its own 224 px input), starts a throwaway
PostgreSQL cluster (Debian's package, as tests/postgres_server.py does), then for each log and replica count starts
`python -m core serve --workers N` on 127.0.0.1, waits until every replica answers, warms up, and sends a fixed
number of single-image requests (640x480 JPEGs) from concurrent clients within a time limit. Checks that the log
holds exactly one row per answered image. The clients run on the same cores as the service; the load average
before and after each measurement is recorded, since other processes on the machine change the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serve_load import photos  # noqa: E402
from core.data import sample  # noqa: E402
from core.runs.jobs import JobManager  # noqa: E402
from core.serving.predlog import PredictionLog  # noqa: E402
from core.serving.process import start_service, stop_service  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from tests.postgres_server import running_postgres  # noqa: E402


def replicas_up(url: str, count: int, timeout: float = 300.0) -> int:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        try:
            with httpx.Client(timeout=5) as fresh:  # a new connection each time: the kernel picks a replica
                seen.add(fresh.get(f"{url}/health").json()["replica"])
        except httpx.HTTPError:
            time.sleep(0.2)
    return len(seen)


def load(url: str, pictures: list[bytes], concurrency: int, requests: int, time_limit: float) -> dict:
    """`requests` single-image requests from `concurrency` clients (each its own connection), within time_limit."""
    latencies: list[float] = []
    failed, lock = [0], threading.Lock()
    deadline = time.monotonic() + time_limit
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for number in counter:  # shared iterator: exactly `requests` in total
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                response = http.post("/predict", files={"file": ("photo.jpg", pictures[number % len(pictures)])})
                with lock:
                    if response.status_code == 200:
                        latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        failed[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies) or [float("nan")]
    return {"answered": len(latencies), "failed": failed[0], "wall_s": round(wall, 2),
            "images_per_s": round(len(latencies) / wall, 1), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)}


def measure(run_dir: Path, log_url: str, replicas: int, pictures: list[bytes], work: Path,
            args: argparse.Namespace) -> dict:
    service = start_service(run_dir, log_url=log_url, max_batch=16, workers=replicas, timeout=300,
                            output=work / f"serve-{replicas}-{len(os.listdir(work))}.out")
    try:
        up = replicas_up(service.url, replicas)
        load(service.url, pictures, args.concurrency, 2 * args.concurrency, args.time_limit)  # warm-up
        rows_before = PredictionLog(log_url, create=False).count()
        load_before = os.getloadavg()
        result = load(service.url, pictures, args.concurrency, args.requests, args.time_limit)
        load_after = os.getloadavg()
        rows = PredictionLog(log_url, create=False).count() - rows_before
    finally:
        stop_service(service)
    return {"replicas": replicas, "replicas_seen": up, **result, "rows_logged": rows,
            "rows_match_answers": rows == result["answered"],
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in load_after]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=192, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--time-limit", type=float, default=90.0, help="seconds per measurement, at most")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_postgres() as postgres:
        work = Path(tmp)
        os.environ.setdefault("TRANSFERLAB_HOME", str(work / "home"))
        job = JobManager(work / "home").submit(TrainConfig(data=str(sample.SAMPLE_ZIP), epochs=1), work / "runs")
        job.wait()
        pictures = photos(work)
        started_load = os.getloadavg()
        results = []
        for backend in ("sqlite", "postgresql"):
            for replicas in (1, 3):
                url = (f"sqlite:///{work / f'log-{replicas}.sqlite'}" if backend == "sqlite"
                       else postgres.new_database())
                results.append({"log": backend, **measure(job.run_dir, url, replicas, pictures, work, args)})
                print(json.dumps(results[-1]), flush=True)
    result = {
        "machine": f"{os.cpu_count()} CPU threads, {platform.processor() or platform.machine()}",
        "note": ("measured while other agents' processes shared the machine (see the load averages)"
                 if max(started_load) > 1.0 else "measured on a quiet machine"),
        "load_average_at_start": [round(v, 2) for v in started_load],
        "backbone": "efficientnet_lite0 (224 px)", "image": "640x480 JPEG, one per request",
        "concurrency": args.concurrency, "max_batch": 16, "results": results,
    }
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "bench" / "results" / f"serve_replicas-{os.cpu_count()}core-cpu.json"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
