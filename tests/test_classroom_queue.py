"""A class on the server's queue: its rules admit every run, a pause holds its queued runs (the rest of the server
goes on), the teacher's dashboard shows every student's runs, a queued student is told an honest wait, and small
jobs may share a GPU. The training processes are real processes that only play a run (this machine has no GPU)."""
from __future__ import annotations

import statistics
import sys

import pytest

from core.classroom import control, dashboard, joining, roster
from core.classroom.rules import Rules
from core.runs import gpu_share, waiting
from core.runs.jobs import JobManager
from core.runs.queue import FairQueue
from core.training.config import ConfigError, TrainConfig
from tests.test_worker import FAKE_WORKER, wait_for

QUICK_WORKER = """
import sys, time
from core.runs.folder import Run
run = Run(sys.argv[1])
started = time.time()
run.set_status("running", started=started)
time.sleep(0.4)
run.set_status("finished", started=started, finished=time.time(), val_accuracy=float(sys.argv[2]))
"""


class Server(JobManager):
    """Runs wait for their stop file, or (accuracy in the config's data name) finish quickly with that accuracy."""

    def command(self, job):
        if job.config.data_name.startswith("quick"):
            return [sys.executable, "-c", QUICK_WORKER, str(job.run_dir), job.config.data_name.split(":")[1]]
        return [sys.executable, "-c", FAKE_WORKER, str(job.run_dir)]


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("TRANSFERLAB_HOME", str(folder))
    return folder


@pytest.fixture
def server(home):
    manager = control.attach(Server(home, gpu_count=0, mps=False))
    yield manager
    for job in manager.jobs():
        manager.cancel(job.id)
    for job in manager.jobs():
        job.wait(30)


WAITS = TrainConfig(data="unused")


def quick(accuracy: float) -> TrainConfig:
    return TrainConfig(data="unused", data_name=f"quick:{accuracy}")


def test_a_students_run_is_checked_against_the_class_rules_before_any_folder_exists(server, home):
    from core import paths
    from core.workspace import Workspace

    classroom, _ = roster.create("Year 7")
    control.set_rules(classroom, Rules(max_epochs=5))
    fox = joining.join(classroom, "Fox")
    with pytest.raises(ConfigError, match="at most 5 epochs"):
        server.submit(TrainConfig(data="unused", epochs=8), fox.workspace.runs)
    assert not fox.workspace.runs.exists() and server.jobs() == []
    private = Workspace.of(paths.new_workspace_key())
    job = server.submit(TrainConfig(data="unused", epochs=8), private.runs)  # no class: nothing changes
    assert job.group is None and job.state == "running"
    assert server.submit(TrainConfig(data="unused", epochs=5), fox.workspace.runs).group == classroom.id


def test_a_paused_class_holds_its_queued_runs_while_the_rest_of_the_server_goes_on(server, home):
    from core import paths
    from core.workspace import Workspace

    classroom, _ = roster.create("Year 7")
    fox, owl = joining.join(classroom, "Fox"), joining.join(classroom, "Owl")
    running = server.submit(WAITS, fox.workspace.runs)
    assert running.state == "running"
    classroom = control.pause(classroom, server)
    held = server.submit(WAITS, owl.workspace.runs)
    outsider = server.submit(WAITS, Workspace.of(paths.new_workspace_key()).runs)
    place = server.place(held.id)
    assert place.paused and "paused training" in place.sentence()
    assert not server.place(outsider.id).paused and server.place(outsider.id).ahead == 1  # held runs hold no place
    assert running.state == "running"  # a pause lets running runs finish
    server.cancel(running.id)
    assert wait_for(lambda: outsider.state == "running", 30) and held.state == "queued"
    control.resume(classroom, server)
    assert not server.place(held.id).paused
    server.cancel(outsider.id)
    assert wait_for(lambda: held.state == "running", 30)


def test_pausing_can_cancel_the_class_runs_that_are_training(server):
    classroom, _ = roster.create("Year 7")
    fox = joining.join(classroom, "Fox")
    job = server.submit(WAITS, fox.workspace.runs)
    control.pause(classroom, server, cancel_running=True)
    assert job.wait(30) and job.state == "cancelled"


def test_a_restarted_server_still_holds_a_paused_classes_runs(home):
    classroom, _ = roster.create("Year 7")
    fox = joining.join(classroom, "Fox")
    control.pause(classroom, Server(home, gpu_count=0, mps=False))
    fresh = control.attach(Server(home, gpu_count=0, mps=False))  # the server restarted: the queue is empty
    job = fresh.submit(WAITS, fox.workspace.runs)
    assert job.state == "queued" and fresh.place(job.id).paused
    fresh.cancel(job.id)


def test_the_teacher_can_cancel_one_students_run_and_only_a_run_of_that_student(server):
    classroom, _ = roster.create("Year 7")
    fox, owl = joining.join(classroom, "Fox"), joining.join(classroom, "Owl")
    job = server.submit(WAITS, fox.workspace.runs)
    assert not control.cancel_run(classroom, owl, job.id, server)  # not Owl's
    assert control.cancel_run(classroom, fox, job.id, server)
    assert job.wait(30) and job.state == "cancelled"


def test_the_dashboard_shows_every_student_their_runs_and_a_leaderboard(server, home):
    classroom, _ = roster.create("Year 7")
    fox, owl, ant = (joining.join(classroom, n) for n in ("Fox", "Owl", "Ant"))
    done = [server.submit(quick(0.75), fox.workspace.runs), server.submit(quick(0.5), owl.workspace.runs)]
    assert all(job.wait(60) for job in done)
    training = server.submit(WAITS, fox.workspace.runs)
    queued = server.submit(WAITS, owl.workspace.runs)
    assert wait_for(lambda: training.run.status().get("state") == "running", 30)
    board = dashboard.Dashboard()
    rows = {row.student.nickname: row for row in board.snapshot(classroom, server)}
    assert list(rows) == ["Fox", "Owl", "Ant"] and rows["Ant"].runs == () and rows["Ant"].data is None
    assert [r.state for r in rows["Fox"].runs] == ["running", "finished"] and rows["Fox"].best.accuracy == 0.75
    assert rows["Owl"].runs[0].state == "queued" and "1 ahead of yours" in rows["Owl"].runs[0].progress
    assert "It should start" in rows["Owl"].runs[0].progress  # runs have finished here: estimated from them
    assert [(name, accuracy) for name, accuracy, _ in dashboard.leaderboard(list(rows.values()))] == [
        ("Fox", 0.75), ("Owl", 0.5)]
    assert [j.id for j in control.class_jobs(classroom, server)] == [training.id, queued.id]
    again = {row.student.nickname: row for row in board.snapshot(classroom, server)}
    assert again["Fox"].runs[1] is rows["Fox"].runs[1]  # a finished run is not read again


def test_the_dashboard_checks_each_dataset_once_in_the_background(server, home):
    from core.classroom import starter

    classroom, _ = roster.create("Year 7")
    joining.join(classroom, "Fox")
    classroom = starter.push_bundled(classroom, "colours")
    joining.join(classroom, "Owl")
    board = dashboard.Dashboard()
    board.snapshot(classroom, server)
    dashboard.SUMMARIES.wait_idle()
    rows = board.snapshot(classroom, server)
    assert all(r.data.classes == {"blue": 24, "green": 24, "red": 24, "yellow": 24} for r in rows)
    assert all(not r.data.checking and r.data.images == 96 for r in rows)


def test_a_queued_students_wait_is_estimated_from_runs_that_finished_here(server):
    classroom, _ = roster.create("Year 7")
    fox, owl = joining.join(classroom, "Fox"), joining.join(classroom, "Owl")
    first = server.submit(WAITS, fox.workspace.runs)
    second = server.submit(WAITS, owl.workspace.runs)
    assert "no estimate" in waiting.estimate(server, second.id).sentence()  # nothing finished yet: no guess
    assert waiting.before_a_new_run(server) is None
    server.cancel(first.id)
    server.cancel(second.id)
    for accuracy in (0.5, 0.6):
        assert server.submit(quick(accuracy), fox.workspace.runs).wait(60)
    durations = waiting.recent_durations(server)
    assert len(durations) == 2 and all(0.3 < d < 30 for d in durations)
    running = server.submit(WAITS, fox.workspace.runs)
    queued = [server.submit(WAITS, owl.workspace.runs) for _ in range(2)]
    wait = waiting.estimate(server, queued[1].id, now=running.run.status()["created"])
    # one run training now (about a typical run left) and one queued ahead: about two typical runs
    assert wait.seconds == pytest.approx(2 * statistics.median(durations), rel=0.01)
    assert wait.low <= wait.seconds <= wait.high and waiting.estimate(server, running.id) is None
    # The Train page, before Start: a new run waits for the one training and both queued, about three typical runs
    typical, low, high = waiting.before_a_new_run(server, now=running.run.status()["created"])
    assert typical == pytest.approx(3 * statistics.median(durations), rel=0.01) and low <= typical <= high



def test_a_queued_runs_wait_says_its_place_and_the_time_and_a_pause_only_once():
    from core.runs.queue import Place

    ahead = waiting.Wait(Place(1, 0, 2, 0), 90.0, 60.0, 120.0).full()
    assert ahead.startswith("3 ahead of yours") and "It should start in about" in ahead
    paused = waiting.Wait(Place(0, 0, 0, 0, paused=True), None).full()
    assert paused.count("paused") == 1  # said once, not once by the place and again by the wait


# --- several small jobs on one GPU ---

def test_only_head_training_on_cached_features_may_share_a_gpu_and_only_while_memory_allows():
    head = gpu_share.footprint(TrainConfig(data="x"))
    tuned = gpu_share.footprint(TrainConfig(data="x", freeze_depth=3))
    augmented = gpu_share.footprint(TrainConfig(data="x", augment="light"))
    assert head.shareable and not tuned.shareable and not augmented.shareable
    assert 600 << 20 < head.bytes < 4 << 30
    big = 80 << 30
    assert gpu_share.can_share(head, [head, head], big, max_jobs=3)
    assert not gpu_share.can_share(head, [head, head, head], big, max_jobs=3)  # at most max_jobs at once
    assert not gpu_share.can_share(head, [tuned], big, max_jobs=3)  # a fine-tuning run keeps its GPU
    assert not gpu_share.can_share(tuned, [head], big, max_jobs=3)
    assert not gpu_share.can_share(head, [head], int(1.5 * head.bytes), max_jobs=3)  # memory would not do
    assert gpu_share.can_share(tuned, [], big, max_jobs=1)  # an idle GPU takes anything


class _Job:
    def __init__(self, owner, config, slots=("cuda:0",)):
        self.owner, self.config, self.slots, self.state, self.group = owner, config, slots, "queued", None


def test_a_waiting_fine_tuning_run_is_not_overtaken_by_small_jobs_sharing_its_gpu():
    queue = FairQueue(share=gpu_share.GpuSharing(4, lambda slot: 80 << 30))
    first, tuned, small = _Job("a", TrainConfig(data="x")), _Job("b", TrainConfig(data="x", freeze_depth=3)), \
        _Job("c", TrainConfig(data="x"))
    for job in (first, tuned, small):
        queue.add(job)
    assert queue.to_start() == [first]
    first.state = "running"
    assert queue.to_start() == []  # the fine-tuning run waits for the GPU, and the small job waits behind it
    assert FairQueue().share is None  # without a policy (the default), a GPU runs one job at a time


def test_with_sharing_on_two_small_jobs_train_at_once_on_one_gpu(home, monkeypatch):
    monkeypatch.setenv(gpu_share.ENV, "3")
    monkeypatch.setattr(gpu_share, "cuda_memory", lambda slot: 80 << 30)
    manager = Server(home, gpu_count=1, mps=False)
    config = TrainConfig(data="unused", device="cuda")
    jobs = [manager.submit(config, home / "runs") for _ in range(2)]
    tuned = manager.submit(TrainConfig(data="unused", device="cuda", freeze_depth=2), home / "runs")
    assert [j.state for j in jobs] == ["running", "running"] and tuned.state == "queued"
    for job in jobs:
        manager.cancel(job.id)
    assert wait_for(lambda: tuned.state == "running", 30)
    manager.cancel(tuned.id)
    assert tuned.wait(30)
