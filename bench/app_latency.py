"""The app's two latency targets, measured through the same core calls the pages make.

    python bench/app_latency.py

first_curve_point_s: from submitting a job (the Start button) to its first epoch_end event, when the features
are already cached (a re-run with other head settings); the page polls every POLL_SECONDS, so the point is on
screen within first_curve_point_s + POLL_SECONDS. predict_ms: one image through a loaded resnet18 Predictor.
"""
from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from core.data import sample  # noqa: E402
from core.runs.jobs import JobManager  # noqa: E402
from core.serving.inference import Predictor  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from ui.progress import POLL_RUNNING_S as POLL_SECONDS  # noqa: E402  (the live view's refresh interval)


def first_curve_point(manager: JobManager, runs_root: Path) -> dict:
    warm = manager.submit(TrainConfig(data=str(sample.SAMPLE_ZIP)), runs_root)  # computes and caches features
    warm.wait()
    started = time.perf_counter()
    job = manager.submit(TrainConfig(data=str(sample.SAMPLE_ZIP), lr=0.01), runs_root)
    while not job.run.records("epoch_end"):
        time.sleep(0.005)
    first = time.perf_counter() - started
    job.wait()
    return {"first_curve_point_s": round(first, 3), "on_screen_within_s": round(first + POLL_SECONDS, 3),
            "features_cached": job.run.records("run_started")[0]["features_cached"]}


def prediction_latency(manager: JobManager, runs_root: Path, folder: Path) -> dict:
    config = TrainConfig(data=str(sample.SAMPLE_ZIP), backbone="resnet18", weights="none", epochs=1)
    job = manager.submit(config, runs_root)  # weights are irrelevant to speed; nothing to download here
    job.wait()
    predictor = Predictor(job.run_dir)
    photo = folder / "photo.jpg"
    sample.draw("circle", random.Random(0), 640).resize((640, 480)).save(photo, quality=90)
    predictor.predict([photo])  # the first call pays one-time allocations
    times = []
    for _ in range(30):
        started = time.perf_counter()
        predictor.predict([photo], top_k=3)
        times.append((time.perf_counter() - started) * 1000)
    return {"predict_ms_median": round(statistics.median(times), 1), "predict_ms_max": round(max(times), 1),
            "image": "640x480 JPEG, decoded, resized, normalised and classified"}


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manager = JobManager(folder / "work")
        report = {"machine": f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}"}
        report |= first_curve_point(manager, folder / "runs")
        report |= prediction_latency(manager, folder / "runs", folder)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
