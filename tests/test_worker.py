"""Training in its own process: watched by several tabs it keeps going, a GPU per queue, pid reuse is seen through."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import paths
from core.files import read_json, write_json
from core.runs import folder as runs
from core.runs.folder import Run
from core.runs.jobs import JobManager, describe_slots
from core.training import starts
from core.training.config import ConfigError, TrainConfig

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def wait_for(predicate, timeout=120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def train_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("views/train.py")
    return at.run()


def test_a_run_trains_in_its_own_process_while_two_tabs_watch_it_and_a_tab_cancels_it(shapes_folder):
    ws = train_page().query_params["ws"]  # a workspace the server handed out
    manager = JobManager(paths.home())
    slow = TrainConfig(data=str(shapes_folder), backbone="mobilenet_v3_small", weights="none", freeze_depth=0,
                       image_size=48, batch_size=8, epochs=500, early_stopping=0)
    job = manager.submit(slow, paths.home() / "workspaces" / ws / "runs")
    assert wait_for(lambda: job.run.records("epoch_end"))
    assert job.run.status()["pid"] != os.getpid()  # training is not in the server's interpreter
    tabs = [train_page(ws=ws, job=job.id) for _ in range(2)]
    epochs_when_watched = len(job.run.records("epoch_end"))
    deadline = time.time() + 120
    while len(job.run.records("epoch_end")) < epochs_when_watched + 2 and time.time() < deadline:
        for tab in tabs:  # every tab polls, as browsers would
            tab.run()
            assert not tab.exception
    assert len(job.run.records("epoch_end")) >= epochs_when_watched + 2, "epochs stopped coming while watched"
    assert any("Epoch" in p.proto.text for tab in tabs for p in tab.get("progress"))
    tabs[0].button(key="cancel").click().run()  # a tab of another server process: the stop file still works
    assert job.wait(60) and job.state == "cancelled"
    ended = train_page(ws=ws, job=job.id)
    assert any("cancelled" in w.value for w in ended.warning)
    assert not any("Preparing" in i.value or "Queued" in i.value for i in ended.info)


FAKE_WORKER = """
import os, sys, time
from core.runs.folder import Run
run = Run(sys.argv[1])
run.set_status("running", visible_gpus=os.environ.get("CUDA_VISIBLE_DEVICES"))
while not run.stop.is_set():
    time.sleep(0.05)
run.set_status("cancelled", message="Cancelled by the user.")
"""


class FakeGpuServer(JobManager):
    """A four-GPU server whose training processes only wait for their stop file (this machine has no GPU)."""

    def command(self, job):
        self.launched = getattr(self, "launched", {}) | {job.id: super().command(job)}
        return [sys.executable, "-c", FAKE_WORKER, str(job.run_dir)]


def test_four_gpus_run_four_jobs_at_once_and_the_queue_names_the_gpu(tmp_path):
    manager = FakeGpuServer(tmp_path / "work", gpu_count=4, mps=False)
    config = TrainConfig(data="unused", device="cuda")
    jobs = [manager.submit(config, tmp_path / "runs") for _ in range(5)]
    everything = manager.submit(config, tmp_path / "runs", all_gpus=True)
    running = jobs[:4]
    assert wait_for(lambda: all(j.run.status().get("visible_gpus") is not None for j in running), 30)
    assert [j.run.status()["visible_gpus"] for j in running] == ["0", "1", "2", "3"]
    assert [j.device_label for j in running] == ["GPU 0", "GPU 1", "GPU 2", "GPU 3"]
    waiting = jobs[4]
    assert waiting.state == "queued" and waiting.device_label == "GPU 0" and manager.ahead_of(waiting.id) == 1
    assert everything.device_label == "all 4 GPUs" and manager.ahead_of(everything.id) == 5
    manager.cancel(jobs[0].id)
    assert wait_for(lambda: waiting.run.status().get("visible_gpus") == "0", 30)  # GPU 0 is free: the next one
    assert everything.state == "queued"  # it needs every GPU
    for job in jobs[1:]:
        manager.cancel(job.id)
    assert wait_for(lambda: everything.state == "running", 30)
    assert manager.launched[everything.id][1:5] == ["-m", "torch.distributed.run", "--standalone",
                                                    "--nproc_per_node=4"]
    assert manager.launched[everything.id][5:8] == ["-m", "core.runs.worker", str(everything.run_dir)]
    manager.cancel(everything.id)
    assert everything.wait(30) and everything.state == "cancelled"
    assert describe_slots(("cpu",)) == "the CPU"


def test_a_cancelled_queued_job_leaves_the_queue_at_once(tmp_path):
    manager = FakeGpuServer(tmp_path / "work", gpu_count=1, mps=False)
    first, second = (manager.submit(TrainConfig(data="unused"), tmp_path / "runs") for _ in range(2))
    assert second.state == "queued" and manager.ahead_of(second.id) == 1
    assert manager.cancel(second.id) and second.done.is_set()
    assert second.state == "cancelled" and manager.ahead_of(second.id) == 0
    assert second.run.records("run_cancelled")[0]["message"] == "Cancelled before it started."
    manager.cancel(first.id)
    assert first.wait(30)


def test_a_gpu_that_is_not_there_is_refused_before_a_run_folder_exists(tmp_path):
    with pytest.raises(ConfigError, match="no usable NVIDIA GPU"):
        JobManager(tmp_path, gpu_count=0, mps=False).submit(TrainConfig(data="x", device="cuda"), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_reused_pid_does_not_keep_a_run_running_and_it_can_be_deleted(tmp_path):
    run = Run(runs.create(tmp_path, TrainConfig(data="x")).path)
    run.set_status("running")  # this very process, with its real start time: alive
    assert run.is_running()
    stored = read_json(run.file(runs.STATUS))
    write_json(run.file(runs.STATUS), stored | {"pid_start": "1"})  # same pid, another process's start
    assert run.state == "interrupted" and not run.is_running()
    assert [r.state for r in runs.list_runs(tmp_path)] == ["interrupted"]
    run.delete()
    assert not run.path.exists()


def test_the_web_server_does_not_collect_all_garbage_after_every_rerun(monkeypatch):
    """Streamlit's default full gc.collect after each script run cost ~100 ms per live-view poll with torch loaded
    (83% of the server's CPU with 5 tabs watching): the project's config must keep it off."""
    from streamlit import config

    monkeypatch.chdir(Path(APP).parent)
    config.get_config_options(force_reparse=True)
    try:
        assert config.get_option("runner.postScriptGC") is False
        assert config.get_option("server.fileWatcherType") == "none"
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)


@pytest.mark.parametrize("entry", ["core.cli", "core.runs.worker", "core.serving.service", "ui.common"])
def test_every_entry_point_makes_openmp_threads_sleep_before_torch_loads(entry):
    """Spinning OpenMP threads collapse beside any other busy process (2,200 ms against 36 ms per forward pass on
    2 shared cores): `core` must set the wait policy before torch is imported, whichever module comes first."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    probe = f"import {entry}, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], cwd=Path(APP).parent, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "PASSIVE"


def test_a_run_that_finds_no_process_waiting_is_told_to_start_its_own(tmp_path):
    """Two runs of one slot at once (a shared GPU) or a standby that never started: the hand-over says so."""
    from core.runs.standby import Standby

    standby = Standby(tmp_path)
    assert standby.hand_over("cuda:0", tmp_path / "run") is None and standby.start_delay("cuda:0") is None


def test_a_waiting_standby_process_takes_the_next_run_and_a_new_one_waits_behind_it(shapes_folder, tmp_path):
    """The app keeps a training process imported and waiting: the run starts without import time, trains for
    real, logs to its own worker log, and another process waits for the run after it."""
    known_before = len(read_json(paths.home() / starts.START_FILE, {}).get("process_start_s", []))
    manager = JobManager(paths.home(), gpu_count=0, mps=False, standby=True)
    try:
        waiting = manager.standby._ready["cpu"]
        # The Train page's estimate adds nothing for a start once the waiting process has done its imports, and
        # it remembers how long that took on this machine for the next cold start.
        assert manager.start_delay_s("cpu") > 0
        assert wait_for(lambda: manager.start_delay_s("cpu") == 0.0, 600)
        measured = read_json(paths.home() / starts.START_FILE, {})["process_start_s"]
        assert len(measured) == min(known_before + 1, starts.RECENT_STARTS) and 0 < measured[-1] < 600
        quick = TrainConfig(data=str(shapes_folder), weights="none", freeze_depth=0, image_size=48, batch_size=16,
                            epochs=1, early_stopping=0)
        job = manager.submit(quick, tmp_path / "runs")
        assert job.wait(300) and job.state == "finished", job.run.status()
        assert job.pid == waiting.pid  # the run went to the process that was already waiting
        assert manager.start_delay_s("cpu") >= 1.0  # the next run would wait for its replacement's imports
        assert job.run.status()["pid"] == waiting.pid
        assert f"run {job.id}: finished" in job.run.file(runs.WORKER_LOG).read_text()
        assert wait_for(lambda: "cpu" in manager.standby._ready, 30)
        behind = manager.standby._ready["cpu"]
        assert behind.pid != waiting.pid and behind.poll() is None
    finally:
        manager.standby.close()
    assert behind.wait(600) == 0  # its stdin closed before any run came: it ends without training
