"""Background jobs and run folders: queueing, failure reasons, runs that survive a restart."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from core.runs import folder as runs
from core.runs import pipeline as runner
from core.runs.folder import Run
from core.runs.jobs import JobManager
from core.runs.status import process_alive
from core.training.config import TrainConfig
from tests.conftest import class_members, write_zip

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_finished_job_leaves_a_complete_run_folder(shapes_folder, tmp_path):
    manager = JobManager(tmp_path / "work")
    job = manager.submit(TrainConfig(data=str(shapes_folder), image_size=64, epochs=2), tmp_path / "runs")
    assert job.wait(120) and job.state == "finished"
    names = {p.name for p in job.run_dir.iterdir()}
    assert {"config.json", "status.json", "metrics.jsonl", "labels.json", "preprocessing.json",
            "model.safetensors", "evaluation.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    evaluation = runs.Run(job.run_dir).evaluation()
    assert evaluation.labels == ["circle", "square", "triangle"] and len(evaluation.confusion) == 3
    assert {"precision", "recall", "f1", "support"} <= set(evaluation.per_label[0])
    # self-contained: every validation image as the model saw it, so the folder outlives the extracted data
    assert all(job.run.val_pixels(p["sha256"]).shape == (3, 64, 64) for p in evaluation.predictions)
    assert job.run.records("run_finished") and runs.Run(job.run_dir).status()["state"] == "finished"
    assert [r["epoch"] for r in runs.Run(job.run_dir).metrics()] == [1, 2]


def test_jobs_on_one_device_queue_and_report_their_place(shapes_folder, tmp_path):
    manager = JobManager(tmp_path / "work")
    slow = TrainConfig(data=str(shapes_folder), backbone="mobilenet_v3_small", weights="none", freeze_depth=0,
                       image_size=64, batch_size=4, epochs=100)
    first = manager.submit(slow, tmp_path / "runs")
    second = manager.submit(slow, tmp_path / "runs")
    assert wait_for(lambda: first.state == "running")
    assert second.state == "queued" and manager.ahead_of(second.id) == 1
    assert manager.cancel(second.id) and manager.cancel(first.id)
    assert first.wait(60) and second.wait(60)
    assert (first.state, second.state) == ("cancelled", "cancelled")
    assert runs.Run(second.run_dir).status()["message"] == "Cancelled before it started."


def test_a_failing_job_reports_failed_with_a_plain_reason_and_the_traceback(tmp_path):
    one_class = write_zip(tmp_path / "one.zip", class_members("", {"cats": 6}))
    manager = JobManager(tmp_path / "work")
    job = manager.submit(TrainConfig(data=str(one_class), image_size=64), tmp_path / "runs")
    assert job.wait(60) and job.state == "failed"
    status = runs.Run(job.run_dir).status()
    assert "at least two" in status["message"] and "Traceback" in status["details"]
    assert job.run.records("run_failed")[0]["message"] == status["message"]


def test_out_of_memory_is_explained_as_what_to_try():
    message = runner.explain(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert "smaller batch size" in message


def test_runs_are_listed_by_a_new_process_and_orphans_show_as_interrupted(trained_run, tmp_path):
    root = trained_run.parent
    orphan = runs.create(root, TrainConfig(data="x")).path
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    status = json.loads((orphan / "status.json").read_text()) | {"state": "running", "pid": int(dead.stdout),
                                                                  "owner": "a-process-that-died"}
    (orphan / "status.json").write_text(json.dumps(status))
    listing = subprocess.run(
        [sys.executable, "-c", "import sys; from core.runs import folder as runs; "
         "[print(r.id, r.state) for r in runs.list_runs(sys.argv[1])]", str(root)],
        capture_output=True, text=True, check=True).stdout.split("\n")
    assert f"{trained_run.name} finished" in listing and f"{orphan.name} interrupted" in listing


def test_a_killed_training_process_fails_the_run_with_a_sentence_and_the_next_job_runs(shapes_folder, tmp_path):
    manager = JobManager(tmp_path / "work")
    slow = TrainConfig(data=str(shapes_folder), backbone="mobilenet_v3_small", weights="none", freeze_depth=0,
                       image_size=64, batch_size=4, epochs=100)
    doomed = manager.submit(slow, tmp_path / "runs")
    assert wait_for(lambda: doomed.run.records("epoch_end"))  # it is training, in its own process
    worker_pid = runs.Run(doomed.run_dir).status()["pid"]
    assert worker_pid != os.getpid()
    os.kill(worker_pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
    assert doomed.wait(60) and doomed.state == "failed"
    status = runs.Run(doomed.run_dir).status()
    assert "SIGKILL" in status["message"] and "memory" in status["message"]
    assert doomed.run.records("run_failed")[0]["message"] == status["message"]
    healthy = manager.submit(TrainConfig(data=str(shapes_folder), image_size=64, epochs=1), tmp_path / "runs")
    assert healthy.wait(120) and healthy.state == "finished"
    assert runs.Run(healthy.run_dir).status()["pid"] not in (worker_pid, os.getpid())  # a fresh process


SERVER = """
import sys, time
from pathlib import Path
from core.runs.folder import Run
from core.runs.jobs import JobManager
from core.runs.status import process_alive
from core.training.config import TrainConfig
manager = JobManager(Path(sys.argv[1]))
job = manager.submit(TrainConfig(data=sys.argv[2], image_size=48, epochs=1000, early_stopping=0), Path(sys.argv[3]))
print(job.run_dir, flush=True)
time.sleep(3600)
"""


def test_training_ends_with_a_killed_server_instead_of_training_on_unknown(shapes_folder, tmp_path):
    """A SIGKILLed server's training process used to be adopted by init and train on beside the restarted server's
    next job. It now notices the server is gone and ends; the run reads as interrupted."""
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "home"), str(shapes_folder),
                               str(tmp_path / "runs")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        run = Run(server.stdout.readline().strip())
        assert wait_for(lambda: run.status().get("pid") not in (None, server.pid) and run.metrics(), 300)
        worker = run.status()["pid"]
    finally:
        server.kill()
        server.wait()
    assert wait_for(lambda: not process_alive(worker, None), 120)
    assert run.state == "interrupted"
