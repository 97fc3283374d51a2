"""A class sharing one server: runs take turns by workspace, and a queued student is told why they wait."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from core.runs.jobs import JobManager
from core.runs.queue import FairQueue
from core.training.config import TrainConfig
from tests.test_worker import FAKE_WORKER, wait_for


@dataclass(eq=False)
class _Job:
    owner: str
    slots: tuple[str, ...] = ("cpu",)
    state: str = "queued"


def test_one_students_many_runs_do_not_hold_up_the_class():
    queue = FairQueue()
    greedy = [_Job("anna") for _ in range(4)]
    for job in greedy:
        queue.add(job)
    (first,) = queue.to_start()
    first.state = "running"
    ben, cleo = _Job("ben"), _Job("cleo")
    queue.add(ben)
    queue.add(cleo)
    assert queue.order() == [ben, cleo, *greedy[1:]]  # anna's turn comes again after each classmate's
    place = queue.place(greedy[1])
    assert (place.training, place.own_training, place.others_before) == (1, 1, 2)
    assert "2 of other people whose turn comes first" in place.sentence() and "anna" not in place.sentence()
    queue.remove(first)
    assert queue.to_start() == [ben]


def test_within_a_workspace_runs_keep_their_order_and_a_new_busy_period_starts_fresh():
    queue = FairQueue()
    a1, a2, b1 = _Job("a"), _Job("a"), _Job("b")
    for job in (a1, a2, b1):
        queue.add(job)
    assert queue.order() == [a1, b1, a2]
    for job in (a1, a2, b1):
        queue.remove(job)
    queue.add(solo := _Job("a"))
    assert queue.to_start() == [solo]  # yesterday's turns do not count against anyone


class _FakeServer(JobManager):
    def command(self, job):
        return [sys.executable, "-c", FAKE_WORKER, str(job.run_dir)]


def test_the_job_manager_starts_the_next_workspaces_run_first(tmp_path):
    manager = _FakeServer(tmp_path / "work", gpu_count=0, mps=False)
    config = TrainConfig(data="unused")
    anna = [manager.submit(config, tmp_path / "anna" / "runs") for _ in range(3)]
    ben = manager.submit(config, tmp_path / "ben" / "runs")
    assert [j.state for j in anna] == ["running", "queued", "queued"] and ben.state == "queued"
    assert manager.ahead_of(ben.id) == 1 and manager.ahead_of(anna[2].id) == 3
    assert "whose turn comes first" in manager.place(anna[1].id).sentence()
    manager.cancel(anna[0].id)
    assert wait_for(lambda: ben.state == "running", 60)  # not anna's second run: ben's turn
    assert anna[1].state == "queued"
    for job in (ben, *anna[1:]):
        manager.cancel(job.id)
    assert all(job.wait(60) for job in (ben, *anna))
