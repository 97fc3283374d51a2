"""Does the Train page's time estimate hold? The range it shows against the measured time, quiet and loaded.

    python bench/estimate_accuracy.py [--epochs 3] [--image-size 128] [--burners 2] [--out FILE]

Runs take the page's own path: a JobManager with a waiting training process (core.runs.standby), the run queued as
the Start button queues it, timed from submit to the end of the job (what a user waits for). For feature
extraction, the last stage and the whole network (EfficientNet-Lite0 on 120 generated photos), each on a fresh
workspace (no cached features), timed until the run folder says finished (when the page shows it), the range comes from
core.training.estimate.likely_range with the delay the job manager reports (JobManager.start_delay_s): "warm"
starts when the waiting process is ready, "cold" submits the moment the previous run ends, while its replacement
still imports. Then all again under `--burners` busy processes started a minute earlier (the load average needs
that long to see them): first at the training processes' own priority (other runs of a class), then at the normal
priority of other programs, which take the cores first. Prints JSON (and writes --out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BACKBONE = "efficientnet_lite0"
WORKER_NICENESS = 5  # core.runs.worker's


def measure(manager, data: Path, root: Path, frozen: int, total: int, args, wait_ready: bool) -> dict:
    from core.training import estimate
    from core.training.config import TrainConfig

    if wait_ready:
        deadline = time.monotonic() + 120
        while manager.start_delay_s("cpu") > 0 and time.monotonic() < deadline:  # 0 only once it is ready
            time.sleep(0.5)
    num_train, num_val = 96, 24  # the default 20% validation share of 120 images
    speed = estimate.device_speed("cpu")
    point = estimate.for_settings(BACKBONE, args.image_size, frozen, "auto", num_train, num_val, args.epochs,
                                  speed, 2)
    delay = manager.start_delay_s("cpu")
    fast, slow = estimate.likely_range(point, start_s=delay)
    config = TrainConfig(data=str(data), epochs=args.epochs, image_size=args.image_size, early_stopping=0,
                         freeze_depth="all" if frozen >= total else frozen)
    started = time.time()
    job = manager.submit(config, root / f"ws-{time.time_ns()}" / "runs")
    job.wait()
    measured = job.run.status().get("finished", time.time()) - started
    return {"frozen": frozen, "start": "warm" if wait_ready else "cold", "state": job.state,
            "start_delay_s": round(delay, 1), "point_s": round(point + delay, 1),
            "range_s": [round(fast, 1), round(slow, 1)], "measured_s": round(measured, 1),
            "inside": fast <= measured <= slow, "measured_over_point": round(measured / (point + delay), 2),
            "busy_factor": round(estimate.busy_factor(), 2), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def series(manager, data: Path, root: Path, args) -> list[dict]:
    from core.models import backbones
    from core.training import estimate

    total = len(estimate.stage_flops(BACKBONE, backbones.preprocessing(BACKBONE, args.image_size).crop_size)) - 1
    rows = []
    for frozen in (total, total - 1, 0):
        rows.append(measure(manager, data, root, frozen, total, args, wait_ready=True))
        if frozen != 0:  # submitted the moment the previous run ended: its replacement process still imports
            rows.append(measure(manager, data, root, frozen, total, args, wait_ready=False))
    return rows


def loaded(manager, data: Path, root: Path, args, niceness: int) -> list[dict]:
    burn = f"import os; os.nice({niceness})\nwhile True: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(args.burners)]
    try:
        time.sleep(65)  # the one-minute load average the estimate reads needs this long to see them
        return series(manager, data, root, args)
    finally:
        for burner in burners:
            burner.kill()
        time.sleep(30)  # let the load average fall before the next series


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "estimate_accuracy-2core-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["TRANSFERLAB_HOME"] = str(work / "home")  # a fresh machine: its speed and starts measured anew
        from core.data import sample
        from core.runs.jobs import JobManager

        data = sample.write_folder(work / "photos", per_class=40, size=160, seed=1)
        manager = JobManager(work / "home", gpu_count=0, mps=False, standby=True)
        try:
            report = {"machine": f"{os.cpu_count()} CPU cores", "path": "JobManager with standby (the Train page's)",
                      "backbone": BACKBONE, "epochs": args.epochs, "image_size": args.image_size,
                      "quiet": series(manager, data, work, args)}
            for name, niceness in (("loaded_by_runs", WORKER_NICENESS), ("loaded_by_other_programs", 0)):
                report[name] = loaded(manager, data, work, args, niceness)
        finally:
            manager.standby.close()
    rows = report["quiet"] + report["loaded_by_runs"] + report["loaded_by_other_programs"]
    report["inside_range"] = f"{sum(r['inside'] for r in rows)} of {len(rows)}"
    report["within_30_percent_of_point"] = f"{sum(0.7 <= r['measured_over_point'] <= 1.3 for r in rows)} of {len(rows)}"
    text = json.dumps(report, indent=2)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
