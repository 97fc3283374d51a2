"""A lesson's rush: N students join a class and start the default run within a few minutes, on one server.

    .venv/bin/python bench/classroom_load.py [--students 30] [--arrive-s 120] [--baseline 2] [--browser-every 10]

A fresh TRANSFERLAB_HOME; the teacher creates a class and pushes the shipped sample; students arrive at random
times over --arrive-s seconds, each joins (core.classroom.joining, as the Join page does) and submits the Train
page's default run (the bundled EfficientNet-Lite0, only the final layer, default epochs) through a JobManager with
the class rules attached (standby process, as the app's). Meanwhile:
- `streamlit run app.py` on the same home, and a real browser (Playwright + /usr/bin/chromium) loading the teacher's
  dashboard and a student's Train page every --browser-every seconds: time until the page is idle;
- the dashboard snapshot (what the teacher's page redraws every 3 s) is timed every 3 s, warm, and once cold.
Afterwards the baseline: --baseline runs one after another, each alone on the queue and on its own private copy of
the data (its features not shared, as 30 unrelated workspaces would), scaled to N; and one run alone on the shared
sample. Prints JSON and writes bench/results/classroom_load-<cores>core-<device>.json, with os.getloadavg()
(this machine is shared: load from other work inflates every time here).
Note: the runs are submitted by this process, so the server's own queue does not know them (its pages read their
state from disk, as after a restart); the Queue tab's waits are not exercised here (tests/test_classroom_queue.py).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HOME = Path(tempfile.mkdtemp(prefix="transferlab-classbench-"))
os.environ.update(TRANSFERLAB_HOME=str(HOME), TRANSFERLAB_OFFLINE="1")

from core.classroom import attach, joining, roster, starter  # noqa: E402
from core.classroom.dashboard import SUMMARIES, Dashboard  # noqa: E402
from core.data import sample  # noqa: E402
from core.runs.jobs import JobManager  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, IDLE, running_app  # noqa: E402


def default_run(data: Path, name: str) -> TrainConfig:
    return TrainConfig(data=str(data), data_name=name)  # the Train page's defaults on a CPU: head only, Lite0


def arrive(manager: JobManager, classroom, count: int, spread_s: float, seed: int, out: dict) -> None:
    rng = random.Random(seed)
    times = sorted(rng.uniform(0, spread_s) for _ in range(count))
    start = time.monotonic()
    for index, at in enumerate(times):
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        began = time.perf_counter()
        found = joining.find_class(classroom.code, f"bench-{index}")
        student = joining.join(found, f"Student {index + 1}")
        out["join_s"].append(time.perf_counter() - began)
        chosen = student.workspace.dataset()
        out["jobs"].append(manager.submit(default_run(Path(chosen["path"]), chosen["name"]), student.workspace.runs))
        out["students"].append(student)
    out["last_arrival"] = time.perf_counter()


def browse(server: str, teacher_key: str, out: dict, every_s: float, stop: threading.Event) -> None:
    """A teacher's tab and a student's tab, reloaded every `every_s` seconds: seconds until each page is idle."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        while not stop.is_set():
            targets = [("dashboard", f"{server}/classroom?teacher={teacher_key}")]
            if out["students"]:
                targets.append(("student_train", f"{server}/train?ws={out['students'][-1].workspace_key}"))
            for name, url in targets:
                began = time.perf_counter()
                page.goto(url)
                page.wait_for_selector(IDLE)
                spent = round(time.perf_counter() - began, 2)
                if name not in out["first_load_s"]:  # the server's first page imports torch: apart from the rest
                    out["first_load_s"][name] = spent
                else:
                    out["page_load_s"].setdefault(name, []).append(spent)
            stop.wait(every_s)
        browser.close()


def time_dashboard(classroom, manager: JobManager, out: dict, stop: threading.Event) -> None:
    reader = Dashboard()
    while not stop.is_set():
        began = time.perf_counter()
        reader.snapshot(roster.load(classroom.id), manager)
        out["dashboard_warm_ms"].append((time.perf_counter() - began) * 1000)
        stop.wait(3.0)
    SUMMARIES.wait_idle()
    began = time.perf_counter()
    Dashboard().snapshot(roster.load(classroom.id), manager)  # a new teacher tab: every run read once
    out["dashboard_cold_ms"] = round((time.perf_counter() - began) * 1000, 1)


def run_alone(manager: JobManager, classroom, data: Path, name: str) -> float:
    student = joining.join(roster.load(classroom.id), name)
    began = time.perf_counter()
    job = manager.submit(default_run(data, name), student.workspace.runs)
    job.wait()
    assert job.state == "finished", job.run.status()
    return time.perf_counter() - began


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {"n": len(values), "median": round(statistics.median(values), 3),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--arrive-s", type=float, default=120.0)
    parser.add_argument("--baseline", type=int, default=2)
    parser.add_argument("--browser-every", type=float, default=10.0)
    args = parser.parse_args()
    load_before = os.getloadavg()
    manager = attach(JobManager(HOME, standby=True))
    classroom, teacher_key = roster.create("Bench class")
    classroom = starter.push_bundled(classroom, "shapes")
    out: dict = {"join_s": [], "jobs": [], "students": [], "page_load_s": {}, "first_load_s": {},
                 "dashboard_warm_ms": []}
    stop = threading.Event()
    with running_app(HOME) as server:
        helpers = [threading.Thread(target=browse, args=(server, teacher_key, out, args.browser_every, stop)),
                   threading.Thread(target=time_dashboard, args=(classroom, manager, out, stop))]
        for thread in helpers:
            thread.start()
        began = time.perf_counter()
        arrive(manager, classroom, args.students, args.arrive_s, 1, out)
        for job in out["jobs"]:
            job.wait()
        class_s, after_last_s = time.perf_counter() - began, time.perf_counter() - out["last_arrival"]
        load_during = os.getloadavg()
        stop.set()
        for thread in helpers:
            thread.join()
    states = [job.state for job in out["jobs"]]
    durations = [job.run.status().get("finished", 0) - job.run.status().get("started", 0) for job in out["jobs"]]
    shared_alone = run_alone(manager, classroom, sample.SAMPLE_ZIP, "alone, shared sample")
    private = [run_alone(manager, classroom, sample.write_zip(HOME / f"private-{k}.zip", seed=100 + k),
                         f"alone, private copy {k}") for k in range(args.baseline)]
    result = {
        "students": args.students, "arrivals_over_s": args.arrive_s, "finished": states.count("finished"),
        "states": {s: states.count(s) for s in set(states)},
        "class_all_finished_s": round(class_s, 1), "class_finished_after_last_arrival_s": round(after_last_s, 1),
        "one_after_another_private_estimate_s": round(statistics.mean(private) * args.students, 1),
        "one_after_another_shared_estimate_s": round(shared_alone * args.students, 1),
        "run_alone_private_s": [round(p, 1) for p in private], "run_alone_shared_sample_s": round(shared_alone, 1),
        "class_run_training_s": summary(durations), "join_s": summary(out["join_s"]),
        "page_load_s": {name: summary(values) for name, values in out["page_load_s"].items()},
        "first_page_load_s": out["first_load_s"],
        "dashboard_refresh_warm_ms": summary(out["dashboard_warm_ms"]),
        "dashboard_refresh_cold_ms": out.get("dashboard_cold_ms"),
        "machine": {"cpus": os.cpu_count(), "device": "cpu", "python": sys.version.split()[0],
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_during": [round(v, 2) for v in load_during],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()],
                    "note": "shared machine: other agents' work ran at the same time; the load averages say how much"},
    }
    text = json.dumps(result, indent=2)
    print(text)
    target = ROOT / "bench" / "results" / f"classroom_load-{os.cpu_count()}core-cpu.json"
    target.write_text(text + "\n", encoding="utf-8")
    shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
