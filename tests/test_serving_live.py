"""The real service (uvicorn subprocess on 127.0.0.1) under concurrent load, logging to SQLite and to PostgreSQL:
no answered image without its row, also when the server is killed with SIGKILL mid-load; SIGTERM stops it
cleanly. (Several replicas: test_serving_replicas.py.)"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx

from core.serving.predlog import PredictionLog
from core.serving.process import start_service, stop_service


def images(shapes_folder: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(shapes_folder.rglob("*.jpg"))[:12]]


def hammer(url: str, pictures: list[tuple[str, bytes]], threads: int, stop: threading.Event,
           per_thread: int | None = None) -> tuple[list[str], list[str]]:
    """Concurrent clients posting 1-2 images each; returns (ids answered with 200, failures as text)."""
    answered, failures, lock = [], [], threading.Lock()

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            sent = 0
            while not stop.is_set() and (per_thread is None or sent < per_thread):
                chosen = [pictures[(number + sent + k) % len(pictures)] for k in range(1 + sent % 2)]
                try:
                    response = http.post("/predict", files=[("file", (n, d, "image/jpeg")) for n, d in chosen])
                except httpx.HTTPError as error:
                    with lock:
                        failures.append(type(error).__name__)
                    return
                with lock:
                    if response.status_code == 200:
                        answered.extend(r["id"] for r in response.json()["results"])
                    else:
                        failures.append(response.text)
                sent += 1

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return answered, failures


def test_rows_equal_answers_under_concurrent_load_and_sigterm_is_clean(trained_run, shapes_folder, log_url, tmp_path):
    service = start_service(trained_run, log_url=log_url, max_batch=8, output=tmp_path / "out.txt")
    try:
        answered, failures = hammer(service.url, images(shapes_folder), threads=8, stop=threading.Event(),
                                    per_thread=6)
        health = httpx.get(f"{service.url}/health").json()
    finally:
        status = stop_service(service)
    assert not failures and len(answered) == 8 * 9  # 6 requests per client, alternately 1 and 2 images
    assert status == 0, service.output_tail()  # SIGTERM: graceful shutdown, exit status 0
    assert health["batches"] < health["images"]  # concurrent requests shared forward passes
    rows = PredictionLog(log_url).rows()
    assert len(rows) == len(answered) and {r["id"] for r in rows} == set(answered)


def test_every_answer_given_before_a_sigkill_has_its_row(trained_run, shapes_folder, log_url, tmp_path):
    service = start_service(trained_run, log_url=log_url, max_batch=8, output=tmp_path / "out.txt")
    stop = threading.Event()
    result: dict[str, tuple] = {}
    load = threading.Thread(target=lambda: result.setdefault("load", hammer(service.url, images(shapes_folder), 6,
                                                                                 stop)))
    load.start()
    try:
        deadline = time.monotonic() + 60
        while PredictionLog(log_url, create=False).count() < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(service.process.pid, signal.SIGKILL)  # mid-load: no shutdown, no flush, no goodbye
        service.process.wait(10)
    finally:
        stop.set()
        load.join(120)
        stop_service(service)
    answered, failures = result["load"]
    assert len(answered) >= 40 and failures  # the load really was cut off by the kill
    logged = {r["id"] for r in PredictionLog(log_url, create=False).rows()}
    assert set(answered) <= logged  # nothing answered is missing from the log
    assert len(logged) - len(answered) <= 6 * 2  # at most the requests in flight at the kill were logged unanswered
