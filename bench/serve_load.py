"""Bounded load against a local service (127.0.0.1 only): latency and throughput, batched vs one at a time.

    flock /tmp/transferlab-bench.lock python bench/serve_load.py [--requests 96] [--time-limit 60]

Trains a small run with the default backbone (efficientnet_lite0, bundled, its own 224 px input), starts
`python -m core serve` twice as a subprocess (--max-batch 16, then --max-batch 1: the same model answering one
request at a time), and at concurrency 1, 4 and 16 sends a fixed number of single-image requests (640x480 JPEGs)
within a time limit. Reports p50/p99 latency as the client sees it, images/s, and checks that the prediction
log holds exactly one row per answered image. Goals (2 CPU cores): single-image p50 < 40 ms; at concurrency 16
at least 1.5x the one-at-a-time throughput. The client runs on the same cores as the service.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import sample  # noqa: E402
from core.runs.jobs import JobManager  # noqa: E402
from core.serving.predlog import PredictionLog  # noqa: E402
from core.serving.process import start_service, stop_service  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402

CONCURRENCY = (1, 4, 16)


def photos(folder: Path, count: int = 8) -> list[bytes]:
    rng = random.Random(0)
    made = []
    for i in range(count):
        path = folder / f"photo_{i}.jpg"
        sample.draw(("circle", "square", "triangle")[i % 3], rng, 640).resize((640, 480)).save(path, quality=90)
        made.append(path.read_bytes())
    return made


def level(url: str, pictures: list[bytes], concurrency: int, requests: int, time_limit: float) -> dict:
    """`requests` single-image requests from `concurrency` clients, stopping at `time_limit` seconds."""
    latencies: list[float] = []
    answered, failed, lock = [0], [0], threading.Lock()
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
                        answered[0] += 1
                    else:
                        failed[0] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(concurrency)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies) or [float("nan")]
    return {"concurrency": concurrency, "answered": answered[0], "failed": failed[0], "wall_s": round(wall, 2),
            "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
            "images_per_s": round(answered[0] / wall, 1)}


def measure(run_dir: Path, pictures: list[bytes], max_batch: int, work: Path, args: argparse.Namespace) -> dict:
    log_url = f"sqlite:///{work / f'log-batch{max_batch}.sqlite'}"
    service = start_service(run_dir, log_url=log_url, max_batch=max_batch, output=work / f"serve-{max_batch}.out")
    try:
        level(service.url, pictures, 2, 16, args.time_limit)  # warm-up: first calls pay one-time allocations
        warm_rows = PredictionLog(log_url).count()
        levels = [level(service.url, pictures, c, args.requests, args.time_limit) for c in CONCURRENCY]
        health = httpx.get(f"{service.url}/health").json()
    finally:
        stop_service(service)
    rows = PredictionLog(log_url).count() - warm_rows
    answered = sum(result["answered"] for result in levels)
    return {"max_batch": max_batch, "levels": levels, "rows_logged": rows, "rows_match_answers": rows == answered,
            "mean_batch_size": round(health["images"] / max(health["batches"], 1), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency level")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per concurrency level, at most")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("TRANSFERLAB_HOME", str(work / "home"))
        job = JobManager(work / "home").submit(TrainConfig(data=str(sample.SAMPLE_ZIP), epochs=1), work / "runs")
        job.wait()
        pictures = photos(work)
        load_before = os.getloadavg()
        batched = measure(job.run_dir, pictures, 16, work, args)
        single = measure(job.run_dir, pictures, 1, work, args)
        load_after = os.getloadavg()
    by_concurrency = {r["concurrency"]: r for r in batched["levels"]}
    one_at_a_time = {r["concurrency"]: r for r in single["levels"]}
    speedup = by_concurrency[16]["images_per_s"] / max(one_at_a_time[16]["images_per_s"], 1e-9)
    result = {
        "machine": f"{os.cpu_count()} CPU threads, {platform.processor() or platform.machine()}",
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "backbone": "efficientnet_lite0 (224 px)", "image": "640x480 JPEG, one per request",
        "batched": batched, "one_at_a_time": single,
        "speedup_at_16": round(speedup, 2),
        "goal_single_p50_under_40ms": by_concurrency[1]["p50_ms"] < 40,
        "goal_speedup_at_16_at_least_1_5": speedup >= 1.5,
    }
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "bench" / "results" / f"serve_load-{os.cpu_count()}core-cpu.json"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
